//! The echo of text ctb typed, told apart from what the pane's program
//! prints (pure: lines in, keep/skip out), for `pane-exec --wait-for`.
//!
//! A typed line comes back once from the terminal (or from the shell's
//! line editor, which echoes for it). It comes back **twice** when the
//! keys arrive while a command still runs (e.g. right after `run` returned
//! on its end marker, before the shell reads again): the terminal echoes
//! them at once, and the line editor shows them again after its prompt.
//! So the first line holding each typed line (in order) is skipped, and
//! one more line holding it, anywhere later. The unfinished last line is
//! searched only once every typed line was echoed, and never while it
//! holds a typed line that may still be echoed again.

/// Which lines of the stream are echoes of the lines ctb typed.
#[derive(Debug, Clone)]
pub struct Echo {
    typed: Vec<String>,
    /// `typed[..due]` were echoed once.
    due: usize,
    /// Per typed line: a second echo may still come.
    again: Vec<bool>,
}

impl Echo {
    /// For the lines ctb typed (blank ones are never told apart).
    pub fn new(typed: &[String]) -> Echo {
        let typed: Vec<String> = typed.iter().filter(|t| !t.trim().is_empty()).cloned().collect();
        let again = vec![true; typed.len()];
        Echo { typed, due: 0, again }
    }

    /// Whether finished line `l` is an echo (then it is counted as one).
    pub fn skip(&mut self, l: &str) -> bool {
        if self.typed.get(self.due).is_some_and(|t| l.contains(t.as_str())) {
            self.due += 1;
            return true;
        }
        if let Some(i) = (0..self.due).find(|&i| self.again[i] && l.contains(self.typed[i].as_str())) {
            self.again[i] = false;
            return true;
        }
        false
    }

    /// Whether the unfinished line `partial` may be searched.
    pub fn search_partial(&self, partial: &str) -> bool {
        self.due == self.typed.len()
            && !(0..self.due).any(|i| self.again[i] && partial.contains(self.typed[i].as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(typed: &[&str]) -> Echo {
        Echo::new(&typed.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn one_echo_then_output() {
        let mut e = echo(&["sleep 1; echo DONE"]);
        assert!(!e.search_partial("$ sleep 1; ec"));
        assert!(e.skip("$ sleep 1; echo DONE"));
        assert!(!e.skip("DONE"));
        assert!(e.search_partial("Password: "));
    }

    #[test]
    fn the_terminals_echo_and_the_line_editors() {
        let mut e = echo(&["sleep 1; echo DONE"]);
        assert!(e.skip("sleep 1; echo DONE"));
        // The line editor draws it again after its prompt.
        assert!(!e.search_partial("bash$ sleep 1; echo DONE"));
        assert!(e.skip("bash$ sleep 1; echo DONE"));
        assert!(!e.skip("DONE"));
        // Two echoes at most: output holding the text is output.
        assert!(!e.skip("x sleep 1; echo DONE"));
        assert!(e.search_partial("sleep 1; echo DONE"));
    }

    #[test]
    fn lines_in_order_first() {
        let mut e = echo(&["echo a", "echo ab", ""]);
        assert!(e.skip("$ echo a"));
        assert!(!e.search_partial("> "));
        assert!(e.skip("> echo ab"));
        assert!(!e.skip("a"));
        assert!(e.search_partial("> "));
        // The second echo of each, as the line editor runs them.
        assert!(e.skip("$ echo a"));
        assert!(e.skip("$ echo ab"));
        assert!(!e.skip("ab"));
    }

    #[test]
    fn nothing_typed_nothing_skipped() {
        let mut e = echo(&[]);
        assert!(!e.skip("anything"));
        assert!(e.search_partial("anything"));
    }
}
