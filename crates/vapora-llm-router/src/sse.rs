//! A minimal Server-Sent Events decoder for streamed provider responses.
//!
//! Providers send `data: ...` lines separated by blank lines. Only the data
//! payloads matter to us; comments, `event:` and `id:` fields are skipped.

/// Splits a byte stream into SSE `data` payloads, one per event.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    lines: LineBuffer,
    data: String,
}

impl SseDecoder {
    /// Feeds a chunk of bytes and returns every event completed by it.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for line in self.lines.push(chunk) {
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(std::mem::take(&mut self.data));
                }
            } else if let Some(rest) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            }
        }
        events
    }

    /// Flushes an event left unterminated when the stream closed.
    pub(crate) fn finish(&mut self) -> Option<String> {
        if let Some(line) = self.lines.take_rest()
            && let Some(rest) = line.strip_prefix("data:")
        {
            self.data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
        (!self.data.is_empty()).then(|| std::mem::take(&mut self.data))
    }
}

/// Accumulates bytes and yields complete lines (without `\n` or `\r\n`).
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        lines
    }

    pub(crate) fn take_rest(&mut self) -> Option<String> {
        (!self.pending.is_empty())
            .then(|| String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_events_split_across_chunks() {
        let mut d = SseDecoder::default();
        assert!(d.push(b"data: {\"a\"").is_empty());
        assert_eq!(
            d.push(b":1}\n\ndata: [DONE]\r\n\r\n"),
            vec!["{\"a\":1}", "[DONE]"]
        );
        assert_eq!(d.push(b": comment\nevent: x\ndata: tail"), Vec::<String>::new());
        assert_eq!(d.finish().as_deref(), Some("tail"));
    }
}
