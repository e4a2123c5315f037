//! Cutting a page out of a listing. Every paged read asks storage for one
//! item more than the page holds: if it comes back, there is a next page,
//! and the last item kept is where it starts.

/// Cuts `items` (read with a limit of `limit + 1`) to `limit`, and returns
/// the cursor of the next page if there is one.
pub fn cut<T, C>(items: &mut Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> C) -> Option<C> {
    if items.len() <= limit {
        return None;
    }
    items.truncate(limit);
    items.last().map(cursor_of)
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_was_read() {
        let mut more = vec![1, 2, 3];
        assert_eq!(cut(&mut more, 2, |n| *n), Some(2));
        assert_eq!(more, [1, 2]);
        let mut all = vec![1, 2];
        assert_eq!(cut(&mut all, 2, |n| *n), None);
        assert_eq!(all, [1, 2]);
    }
}
