//! Joining a pane's output stream late: the stream began before the
//! capture it is shown after, so its first lines may repeat the end of the
//! capture. Pure: lines in, lines to show out.
//!
//! The overlap is the longest run of the stream's first lines that equals
//! a suffix of the captured lines (lines printed between the subscription
//! and the capture are in both). Exact for output whose lines differ; for
//! repetitive output (the same line over and over) the longest candidate
//! is taken.
//!
//! Both ends may cut a line: the stream may begin in the middle of one
//! (its first line is then the end of a captured line), and the capture's
//! last line may still be being written (the cursor's line, kept apart:
//! with no overlap, the stream's first line goes on with it).

/// Drops a stream's first lines that repeat the end of `tail`.
#[derive(Debug)]
pub struct Overlap {
    tail: Vec<String>,
    /// Start positions in `tail` still matching the lines held.
    cands: Vec<usize>,
    /// Stream lines held back while the overlap is undecided.
    held: Vec<String>,
    /// The longest overlap found complete so far (lines of `held`).
    best: Option<usize>,
    /// The capture's unfinished last line, if any.
    partial: Option<String>,
    done: bool,
}

impl Overlap {
    /// `tail`: the captured whole lines, oldest first; `partial`: the
    /// line the capture ended in the middle of.
    pub fn new(tail: Vec<String>, partial: Option<String>) -> Overlap {
        let done = tail.is_empty() && partial.is_none();
        Overlap { tail, cands: Vec::new(), held: Vec::new(), best: None, partial, done }
    }

    /// One stream line; returns the lines to show now (in order).
    pub fn push(&mut self, line: String) -> Vec<String> {
        if self.done {
            return vec![line];
        }
        let j = self.held.len();
        if j == 0 {
            // The stream's first line may be the end of a line.
            self.cands = (0..self.tail.len()).filter(|&i| self.tail[i].ends_with(line.as_str())).collect();
        } else {
            let (tail, partial) = (&self.tail, &self.partial);
            self.cands.retain(|&i| match (i + j).cmp(&tail.len()) {
                std::cmp::Ordering::Less => tail[i + j] == line,
                // The unfinished line, finished in the stream.
                std::cmp::Ordering::Equal => partial.as_ref().is_some_and(|p| line.starts_with(p.as_str())),
                std::cmp::Ordering::Greater => false,
            });
        }
        self.held.push(line);
        let n = self.held.len();
        // A candidate ending exactly at the capture's end (its unfinished
        // line included) is an overlap.
        let end = self.tail.len() + usize::from(self.partial.is_some());
        if let Some(&i) = self.cands.iter().find(|&&i| i + n == end) {
            self.best = Some(n);
            self.cands.retain(|&c| c < i);
        }
        if self.cands.is_empty() {
            return self.decide();
        }
        Vec::new()
    }

    /// End of the stream: what is still held.
    pub fn flush(&mut self) -> Vec<String> {
        if self.done {
            return Vec::new();
        }
        self.decide()
    }

    fn decide(&mut self) -> Vec<String> {
        self.done = true;
        // The unfinished line, finished in the stream, was never shown.
        let skip = self.best.map_or(0, |n| n - usize::from(self.partial.is_some()));
        let mut out: Vec<String> = self.held.drain(..).skip(skip).collect();
        // No overlap: the stream began within the capture's unfinished
        // line (or where it ended); its first line finishes that one.
        if let (None, Some(p), Some(first)) = (self.best, self.partial.take(), out.first_mut()) {
            let k = (0..=p.len().min(first.len()))
                .rev()
                .find(|&k| p.is_char_boundary(p.len() - k) && first.is_char_boundary(k) && p.ends_with(&first[..k]))
                .unwrap_or(0);
            *first = format!("{p}{}", &first[k..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tail: &[&str], stream: &[&str]) -> Vec<String> {
        run_partial(tail, None, stream)
    }

    fn run_partial(tail: &[&str], partial: Option<&str>, stream: &[&str]) -> Vec<String> {
        let mut o = Overlap::new(tail.iter().map(|s| s.to_string()).collect(), partial.map(str::to_owned));
        let mut out = Vec::new();
        for l in stream {
            out.extend(o.push(l.to_string()));
        }
        out.extend(o.flush());
        out
    }

    #[test]
    fn drops_exactly_the_repeated_lines() {
        assert_eq!(run(&["1", "2", "3"], &["2", "3", "4", "5"]), ["4", "5"]);
        assert_eq!(run(&["1", "2", "3"], &["4", "5"]), ["4", "5"]);
        assert_eq!(run(&["1", "2", "3"], &["3"]), Vec::<String>::new());
        assert_eq!(run(&[], &["1"]), ["1"]);
        // A line equal to one in the middle of the capture is not a repeat.
        assert_eq!(run(&["a", "b", "c"], &["b", "x"]), ["b", "x"]);
    }

    #[test]
    fn the_longest_overlap_wins() {
        assert_eq!(run(&["a", "b", "a", "b"], &["a", "b", "a", "b", "c"]), ["c"]);
        assert_eq!(run(&["a", "b", "a", "b"], &["a", "b", "c"]), ["c"]);
    }

    #[test]
    fn cut_lines_at_either_end() {
        // The stream begins in the middle of a captured line.
        assert_eq!(run(&["2163", "2164", "2165"], &["65", "2166"]), ["2166"]);
        assert_eq!(run(&["2163", "2164", "2165"], &["64", "2165", "2166"]), ["2166"]);
        // The capture ends in the middle of a line the stream finishes.
        assert_eq!(run_partial(&["2165", "2166"], Some("216"), &["2166", "2167", "2168"]), ["2167", "2168"]);
        assert_eq!(run_partial(&["2165", "2166"], Some("216"), &["66", "2167"]), ["2167"]);
        // ... and the stream begins within that line, or where it ended.
        assert_eq!(run_partial(&["2165", "2166"], Some("216"), &["67", "2168"]), ["2167", "2168"]);
        assert_eq!(run_partial(&["2165", "2166"], Some("216"), &["7", "2168"]), ["2167", "2168"]);
        assert_eq!(run_partial(&[], Some("Pass"), &["word: ok"]), ["Password: ok"]);
        // The stream's first line also ends an earlier captured line, but
        // what follows is not the unfinished line: it finished that one.
        assert_eq!(
            run_partial(&["step 1 done", "step 2 done"], Some("step 3 do"), &["ne", "step 4 done"]),
            ["step 3 done", "step 4 done"]
        );
    }

    #[test]
    fn a_long_counter() {
        let tail: Vec<String> = (1..=5000).map(|i| i.to_string()).collect();
        let mut o = Overlap::new(tail, None);
        let mut out = Vec::new();
        for i in 3850..=6000 {
            out.extend(o.push(i.to_string()));
        }
        assert_eq!(out.first().map(String::as_str), Some("5001"));
        assert_eq!(out.len(), 1000);
    }
}
