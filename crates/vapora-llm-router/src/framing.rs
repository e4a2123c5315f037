//! Splitting streamed response bodies into payloads.
//!
//! Providers stream either Server-Sent Events (`data: ...` lines separated by
//! blank lines: OpenAI, Anthropic, Gemini) or one JSON object per line
//! (Ollama). Both reduce to "complete lines in, payloads out".

/// How a provider frames its streamed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Sse,
    JsonLines,
}

/// Turns body chunks into payloads for one [`Framing`].
#[derive(Debug)]
pub struct PayloadDecoder {
    framing: Framing,
    lines: LineBuffer,
    data: String,
}

impl PayloadDecoder {
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            lines: LineBuffer::default(),
            data: String::new(),
        }
    }

    /// Feeds a chunk of bytes and returns every payload completed by it.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut payloads = Vec::new();
        for line in self.lines.push(chunk) {
            self.line(line, &mut payloads);
        }
        payloads
    }

    /// Flushes what is left when the body ends.
    pub fn finish(&mut self) -> Vec<String> {
        let mut payloads = Vec::new();
        if let Some(line) = self.lines.take_rest() {
            self.line(line, &mut payloads);
        }
        if !self.data.is_empty() {
            payloads.push(std::mem::take(&mut self.data));
        }
        payloads
    }

    fn line(&mut self, line: String, payloads: &mut Vec<String>) {
        match self.framing {
            Framing::JsonLines => {
                if !line.trim().is_empty() {
                    payloads.push(line);
                }
            }
            // Only `data` fields matter; comments, `event:` and `id:` are skipped
            // (every provider repeats the event type inside the JSON).
            Framing::Sse => {
                if line.is_empty() {
                    if !self.data.is_empty() {
                        payloads.push(std::mem::take(&mut self.data));
                    }
                } else if let Some(rest) = line.strip_prefix("data:") {
                    if !self.data.is_empty() {
                        self.data.push('\n');
                    }
                    self.data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                }
            }
        }
    }
}

/// Accumulates bytes and yields complete lines (without `\n` or `\r\n`).
/// Lines are only decoded once complete, so a UTF-8 character split across
/// chunks is never mangled.
#[derive(Debug, Default)]
struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.pending[start..start + pos];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            lines.push(String::from_utf8_lossy(line).into_owned());
            start += pos + 1;
        }
        self.pending.drain(..start);
        lines
    }

    fn take_rest(&mut self) -> Option<String> {
        (!self.pending.is_empty())
            .then(|| String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_chunks() {
        let mut d = PayloadDecoder::new(Framing::Sse);
        assert!(d.push(b"data: {\"a\"").is_empty());
        assert_eq!(
            d.push(b":1}\n\ndata: [DONE]\r\n\r\n"),
            vec!["{\"a\":1}", "[DONE]"]
        );
        assert_eq!(d.push(b": comment\nevent: x\ndata: tail"), Vec::<String>::new());
        assert_eq!(d.finish(), vec!["tail"]);
    }

    #[test]
    fn json_lines_and_split_utf8() {
        let mut d = PayloadDecoder::new(Framing::JsonLines);
        let text = "{\"t\":\"é\"}\n".as_bytes();
        assert!(d.push(&text[..7]).is_empty());
        assert_eq!(d.push(&text[7..]), vec!["{\"t\":\"é\"}"]);
        assert_eq!(d.push(b"\n{\"x\":1}"), Vec::<String>::new());
        assert_eq!(d.finish(), vec!["{\"x\":1}"]);
    }
}
