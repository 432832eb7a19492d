//! JSON Lines batches as `sift rerank --batch` reads and writes them: requests one per line,
//! read with a bound so that a line without an end cannot take the host's memory; each
//! request's optional `"id"`; and, to resume a stopped batch, the input lines a results file
//! already answers. The CLI adds the threads, signals and progress around these.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{self, BufRead};
use std::path::Path;

use serde_json::Value;

use crate::request::Request;

/// The longest input line (one request) `sift rerank --batch` reads, in bytes: 64 MiB.
/// Requests name their images and videos by path, so a real request is far below it.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// One input line, as [`LineReader`] hands it over.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line's bytes, without its `\n` (or `\r\n`).
    Complete(Vec<u8>),
    /// A line over the bound; what was read of it is dropped and the rest is skipped.
    TooLong,
}

/// Reads lines of at most `max` bytes one at a time, never holding more than `max` bytes of a
/// longer line (whose end may never come).
pub struct LineReader<R> {
    input: R,
    max: usize,
    /// The last line was too long and its end has not been read yet.
    in_long_line: bool,
    consumed: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(input: R, max: usize) -> Self {
        Self {
            input,
            max,
            in_long_line: false,
            consumed: 0,
        }
    }

    /// Bytes read from the input so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next line, or `None` at the end of the input. A last line without `\n` is a line.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        if std::mem::take(&mut self.in_long_line) {
            self.skip_rest_of_line()?;
        }
        let mut line = Vec::new();
        loop {
            let (used, found_end, too_long) = match self.input.fill_buf() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok([]) => return Ok((!line.is_empty()).then(|| Line::Complete(without_cr(line)))),
                Ok(available) => {
                    let end = available.iter().position(|&b| b == b'\n');
                    let take = end.unwrap_or(available.len());
                    let too_long = line.len() + take > self.max;
                    if !too_long {
                        line.extend_from_slice(&available[..take]);
                    }
                    (take + usize::from(end.is_some()), end.is_some(), too_long)
                }
            };
            self.consume(used);
            if too_long {
                self.in_long_line = !found_end;
                return Ok(Some(Line::TooLong));
            }
            if found_end {
                return Ok(Some(Line::Complete(without_cr(line))));
            }
        }
    }

    /// Reads up to and past the next `\n` (or to the end of the input), keeping nothing.
    fn skip_rest_of_line(&mut self) -> io::Result<()> {
        loop {
            let (used, found_end) = match self.input.fill_buf() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok([]) => return Ok(()),
                Ok(available) => match available.iter().position(|&b| b == b'\n') {
                    Some(end) => (end + 1, true),
                    None => (available.len(), false),
                },
            };
            self.consume(used);
            if found_end {
                return Ok(());
            }
        }
    }

    fn consume(&mut self, bytes: usize) {
        self.input.consume(bytes);
        self.consumed += bytes as u64;
    }
}

fn without_cr(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// One line read as a request: the request's `"id"` (a string or a number, echoed in its
/// result) and the request, or why it cannot be scored.
#[derive(Debug)]
pub struct LineRequest {
    pub id: Option<Value>,
    pub request: Result<Request, String>,
}

/// Reads one line's bytes as a request; relative paths in it are taken from `base`.
pub fn parse_line(bytes: &[u8], base: &Path) -> LineRequest {
    let failed = |reason| LineRequest {
        id: None,
        request: Err(reason),
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            return failed(format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ));
        }
    };
    let (text, id) = match take_id(text) {
        Ok(split) => split,
        Err(reason) => return failed(reason),
    };
    LineRequest {
        id,
        request: Request::from_json(&text, base).map_err(|e| e.to_string()),
    }
}

/// Takes the request's top-level `"id"` out of it, since [`Request::from_json`] refuses fields
/// it does not know: the request without it, and the id. Text that is not a JSON object is left
/// as it is, for `from_json` to say what is wrong with it.
fn take_id(text: &str) -> Result<(Cow<'_, str>, Option<Value>), String> {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(text) else {
        return Ok((Cow::Borrowed(text), None));
    };
    match fields.remove("id") {
        None => Ok((Cow::Borrowed(text), None)),
        Some(id @ (Value::String(_) | Value::Number(_))) => {
            Ok((Cow::Owned(Value::Object(fields).to_string()), Some(id)))
        }
        Some(other) => Err(format!("\"id\" must be a string or a number, not {other}")),
    }
}

/// What a results file of an earlier run holds: the input lines it answers, and the length of
/// its whole lines (a last line without its `\n` is a write cut short, to be dropped).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DoneLines {
    pub lines: HashSet<u64>,
    pub whole_bytes: u64,
}

/// Why a results file cannot be resumed.
#[derive(Debug)]
pub enum ResultsFileError {
    Io(io::Error),
    /// Its line `line` (1-based) is not a result line (it has no `"line"`).
    NotAResult {
        line: u64,
    },
}

/// Reads a results file of `sift rerank --batch`: every whole line must be a result naming
/// the input line it answers (blank lines are skipped).
pub fn read_done_lines(mut results: impl BufRead) -> Result<DoneLines, ResultsFileError> {
    let mut done = DoneLines::default();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = results
            .read_until(b'\n', &mut line)
            .map_err(ResultsFileError::Io)?;
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        done.whole_bytes += read as u64;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let answered = serde_json::from_slice::<Value>(&line)
            .ok()
            .and_then(|result| result.get("line").and_then(Value::as_u64))
            .ok_or(ResultsFileError::NotAResult { line: number })?;
        done.lines.insert(answered);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::BufReader;

    fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut reader = LineReader::new(input, max);
        std::iter::from_fn(|| reader.next_line().unwrap()).collect()
    }

    fn complete(text: &str) -> Line {
        Line::Complete(text.as_bytes().to_vec())
    }

    #[test]
    fn lines_end_at_newlines_and_blank_ones_count() {
        assert_eq!(
            lines(b"a\r\n\nbc\n  \nlast", 100),
            [
                complete("a"),
                complete(""),
                complete("bc"),
                complete("  "),
                complete("last")
            ]
        );
        assert_eq!(lines(b"a\n", 100), [complete("a")]);
        assert!(lines(b"", 100).is_empty());
    }

    /// A line of exactly the bound is read; one byte more is an error, its rest skipped, and
    /// the next line read whole, through a buffer smaller than the lines.
    #[test]
    fn a_line_over_the_bound_is_skipped_and_the_next_one_read() {
        let input = b"12345\n123456789\nok\n123456";
        let mut reader = LineReader::new(BufReader::with_capacity(2, &input[..]), 5);
        let got: Vec<Line> = std::iter::from_fn(|| reader.next_line().unwrap()).collect();
        assert_eq!(
            got,
            [
                complete("12345"),
                Line::TooLong,
                complete("ok"),
                Line::TooLong
            ]
        );
        assert_eq!(reader.consumed(), input.len() as u64);
    }

    /// An endless line without `\n` is refused as soon as it passes the bound, without waiting
    /// for an end that never comes (a reader that held the whole line would never return).
    #[test]
    fn an_endless_line_is_refused_at_the_bound() {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = LineReader::new(BufReader::new(io::repeat(b'x')), 1 << 20);
            let line = reader.next_line().unwrap();
            sender.send((line, reader.consumed())).unwrap();
        });
        let (line, consumed) = receiver
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the reader held on to an endless line");
        assert_eq!(line, Some(Line::TooLong));
        assert!(consumed <= (1 << 20) + 8192, "read {consumed} bytes");
    }

    #[test]
    fn an_id_is_taken_out_of_the_request() {
        let (text, id) = take_id(r#"{"id": "a-1", "query": {"text": "q"}}"#).unwrap();
        assert_eq!(id, Some(json!("a-1")));
        assert_eq!(text, r#"{"query":{"text":"q"}}"#);
        let (_, id) = take_id(r#"{"id": 7, "documents": []}"#).unwrap();
        assert_eq!(id, Some(json!(7)));
        let plain = r#"{"query": {"text": "q"}}"#;
        assert_eq!(take_id(plain).unwrap(), (Cow::Borrowed(plain), None));
        assert_eq!(
            take_id("not json").unwrap(),
            (Cow::Borrowed("not json"), None)
        );
        let err = take_id(r#"{"id": [1], "query": {}}"#).unwrap_err();
        assert!(err.contains("\"id\" must be a string or a number"), "{err}");
    }

    #[test]
    fn a_line_is_read_as_its_request_and_id() {
        let base = Path::new("/data");
        let read = parse_line(
            br#"{"id": "q-1", "query": {"text": "q"}, "documents": [{"text": "d"}]}"#,
            base,
        );
        assert_eq!(read.id, Some(json!("q-1")));
        assert_eq!(read.request.unwrap().documents.len(), 1);
        let bad = parse_line(b"{\"query\": \xff}", base);
        assert!(bad.request.unwrap_err().contains("not UTF-8"));
        let unknown = parse_line(br#"{"id": 3, "qurey": {}}"#, base);
        assert_eq!(unknown.id, Some(json!(3)));
        assert!(unknown.request.is_err());
    }

    #[test]
    fn a_results_file_names_its_done_lines_and_its_cut_last_line() {
        let file =
            b"{\"line\":1,\"results\":[]}\n\n{\"error\":\"x\",\"line\":3}\n{\"line\":4,\"res";
        let done = read_done_lines(&file[..]).unwrap();
        assert_eq!(done.lines, HashSet::from([1, 3]));
        assert_eq!(done.whole_bytes, file.len() as u64 - 14);
        let not_results = read_done_lines(&b"{\"line\":1}\n{\"query\":{}}\n"[..]);
        assert!(matches!(
            not_results,
            Err(ResultsFileError::NotAResult { line: 2 })
        ));
    }
}
