//! The recent events a reconnecting client may resume from.
//!
//! A bounded ring of the latest events in sequence order. A client that
//! reconnects with the last sequence number it saw gets everything after
//! it from here, if the ring still reaches back that far; otherwise it is
//! told to resync (re-fetch over REST), because some of what it missed is
//! gone. The ring knows the sequence number after which it is complete
//! (`complete_after`): events before it were never seen by this process
//! (it started later) or have been evicted.

use std::collections::VecDeque;
use std::sync::Arc;

use super::PublishedEvent;

/// What a client resuming after `since` should get.
#[derive(Debug, PartialEq)]
pub enum Resume {
    /// These events, in order (possibly none), then live ones.
    Replay(Vec<Arc<PublishedEvent>>),
    /// Some events after `since` are gone: start over from `latest`.
    Resync { latest: u64 },
}

#[derive(Debug)]
pub struct Window {
    events: VecDeque<Arc<PublishedEvent>>,
    capacity: usize,
    /// Every event after this sequence number is in the ring (or still to
    /// come); `None` until the first event arrives when numbering is not
    /// ours (a broker's stream may already be far along).
    complete_after: Option<u64>,
}

impl Window {
    /// A window over events numbered from `first` on, or (`None`) from
    /// whatever the first one to arrive carries.
    pub fn new(capacity: usize, first: Option<u64>) -> Self {
        Self {
            events: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            complete_after: first.map(|first| first.saturating_sub(1)),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The sequence number of the latest event, or of the point the window
    /// is complete from when it holds none.
    pub fn latest(&self) -> u64 {
        self.events
            .back()
            .map(|e| e.seq)
            .or(self.complete_after)
            .unwrap_or(0)
    }

    /// Keeps `event`, evicting the oldest if full. Returns `false` (and
    /// keeps nothing) for a repeat of an event already held.
    pub fn push(&mut self, event: Arc<PublishedEvent>) -> bool {
        match self.events.back() {
            Some(last) if event.seq <= last.seq => {
                // A broker's numbering only goes backwards when its stream
                // was recreated (its memory storage lost): what is held
                // belongs to the old stream, so start over from here.
                if event.seq + (self.capacity as u64) < last.seq {
                    self.events.clear();
                    self.complete_after = Some(event.seq.saturating_sub(1));
                } else {
                    return false;
                }
            }
            None if self.complete_after.is_none() => {
                self.complete_after = Some(event.seq.saturating_sub(1));
            }
            _ => {}
        }
        if self.events.len() == self.capacity
            && let Some(evicted) = self.events.pop_front()
        {
            self.complete_after = Some(evicted.seq);
        }
        self.events.push_back(event);
        true
    }

    /// What a client that has seen everything up to `since` has missed.
    pub fn resume(&self, since: u64) -> Resume {
        let latest = self.latest();
        match self.complete_after {
            // Nothing has arrived from the broker yet: no telling what the
            // client missed.
            None => Resume::Resync { latest },
            // Ahead of this process (another replica got further, or it is
            // a sequence number from the future): nothing to replay, and
            // the client skips what it has seen as it arrives.
            Some(_) if since >= latest => Resume::Replay(Vec::new()),
            Some(complete_after) if since >= complete_after => {
                let start = self.events.partition_point(|e| e.seq <= since);
                Resume::Replay(self.events.range(start..).cloned().collect())
            }
            Some(_) => Resume::Resync { latest },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> Arc<PublishedEvent> {
        Arc::new(PublishedEvent {
            seq,
            project_id: None,
            json: format!("{{\"seq\":{seq}}}").into(),
        })
    }

    fn seqs(resume: Resume) -> Vec<u64> {
        match resume {
            Resume::Replay(events) => events.iter().map(|e| e.seq).collect(),
            Resume::Resync { latest } => panic!("resync at {latest}"),
        }
    }

    #[test]
    fn replays_what_came_after_since_until_it_is_evicted() {
        let mut window = Window::new(3, Some(10));
        for seq in 10..=13 {
            assert!(window.push(event(seq)));
        }
        assert_eq!(seqs(window.resume(11)), [12, 13]);
        assert_eq!(seqs(window.resume(10)), [11, 12, 13]);
        assert_eq!(seqs(window.resume(13)), Vec::<u64>::new());
        // 10 was evicted: a client that saw only 9 missed it for good.
        assert_eq!(window.resume(9), Resume::Resync { latest: 13 });
    }

    #[test]
    fn a_client_from_before_this_process_resyncs() {
        let window = Window::new(8, Some(1_000));
        assert_eq!(window.resume(999), Resume::Replay(Vec::new()));
        assert_eq!(window.resume(5), Resume::Resync { latest: 999 });
    }

    #[test]
    fn numbering_from_a_broker_starts_where_its_first_event_is() {
        let mut window = Window::new(8, None);
        assert_eq!(window.resume(3), Resume::Resync { latest: 0 });
        assert!(window.push(event(40)));
        assert!(window.push(event(41)));
        assert!(!window.push(event(41)), "a repeat is not kept twice");
        assert_eq!(seqs(window.resume(39)), [40, 41]);
        assert_eq!(window.resume(38), Resume::Resync { latest: 41 });
        // A client that saw more than this replica has yet: nothing now.
        assert_eq!(seqs(window.resume(50)), Vec::<u64>::new());
    }

    #[test]
    fn a_recreated_stream_starts_the_window_over() {
        let mut window = Window::new(4, None);
        for seq in 100..=103 {
            window.push(event(seq));
        }
        assert!(window.push(event(1)));
        assert_eq!(window.latest(), 1);
        assert_eq!(seqs(window.resume(0)), [1]);
    }
}
