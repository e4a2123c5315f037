//! Which streamed output chunks of a task to print, and what of its final
//! output is still unprinted when it ends.
//!
//! Chunks arrive as `task.progress` events numbered per attempt. A chunk of
//! an older attempt (a worker presumed dead that still streams) is dropped;
//! a repeated one (replayed after a reconnect) is dropped; the first chunk
//! of a newer attempt starts the output over. When the task ends, its
//! `result.output` fills in whatever the feed did not deliver, but only
//! when what was printed is exactly its beginning: anything else (a watch
//! joined mid-stream, a gap) would print text twice or out of order.

/// What has been printed of the current attempt's output.
#[derive(Debug)]
pub struct Chunks {
    attempt: u32,
    next_seq: u64,
    printed: String,
    /// The first chunk seen was chunk 0.
    from_start: bool,
    /// Some chunk in between was never seen.
    gap: bool,
    seen_any: bool,
}

impl Chunks {
    pub fn new(attempt: u32) -> Self {
        Self {
            attempt,
            next_seq: 0,
            printed: String::new(),
            from_start: false,
            gap: false,
            seen_any: false,
        }
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Moves on to `attempt`; true when output of the old one was printed
    /// (the caller says that the output starts over).
    pub fn restart(&mut self, attempt: u32) -> bool {
        let printed = self.seen_any;
        *self = Self::new(attempt);
        printed
    }

    /// Whether to print this chunk; call [`Self::restart`] first when
    /// `attempt` is newer than [`Self::attempt`].
    pub fn accept(&mut self, attempt: u32, seq: u64, text: &str) -> bool {
        if attempt != self.attempt || (self.seen_any && seq < self.next_seq) {
            return false;
        }
        if !self.seen_any {
            self.from_start = seq == 0;
        } else if seq > self.next_seq {
            self.gap = true;
        }
        self.seen_any = true;
        self.next_seq = seq + 1;
        self.printed.push_str(text);
        true
    }

    /// The part of the final `output` not printed yet, when that is known.
    pub fn rest_of<'a>(&self, output: &'a str) -> Option<&'a str> {
        if !self.seen_any {
            return Some(output);
        }
        (self.from_start && !self.gap)
            .then(|| output.strip_prefix(self.printed.as_str()))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_chunks_print_once_and_the_rest_fills_in() {
        let mut c = Chunks::new(1);
        assert!(c.accept(1, 0, "Hel"));
        assert!(c.accept(1, 1, "lo"));
        assert!(!c.accept(1, 1, "lo"), "a replayed chunk");
        assert!(!c.accept(1, 0, "Hel"), "an older chunk");
        assert_eq!(c.rest_of("Hello world"), Some(" world"));
        assert_eq!(c.rest_of("Hello"), Some(""));
        assert_eq!(c.rest_of("Help"), None, "output that does not match");
    }

    #[test]
    fn nothing_seen_means_the_whole_output() {
        assert_eq!(Chunks::new(1).rest_of("all"), Some("all"));
    }

    #[test]
    fn joining_mid_stream_or_a_gap_prints_no_rest() {
        let mut mid = Chunks::new(1);
        assert!(mid.accept(1, 3, "d"));
        assert_eq!(mid.rest_of("abcd"), None);

        let mut gap = Chunks::new(1);
        assert!(gap.accept(1, 0, "a"));
        assert!(gap.accept(1, 2, "c"));
        assert_eq!(gap.rest_of("abc"), None);
    }

    #[test]
    fn other_attempts_are_dropped_until_restarted() {
        let mut c = Chunks::new(2);
        assert!(!c.accept(1, 0, "old"));
        assert!(!c.accept(3, 0, "new"));
        assert!(!c.restart(3), "nothing was printed yet");
        assert!(c.accept(3, 0, "new"));
        assert!(c.restart(4));
        assert_eq!(c.attempt(), 4);
        assert_eq!(c.rest_of("x"), Some("x"));
    }
}
