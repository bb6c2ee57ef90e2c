//! The echo of text ctb typed, told apart from what the pane's program
//! prints (pure: lines in, keep/skip out), for `pane-exec --wait-for`.
//!
//! The first line holding each typed line (in order) is its echo (the
//! terminal's, or the shell's line editor's), and the unfinished last
//! line is not searched while an echo is still due.
//!
//! Not told apart: keys typed while a command still runs (e.g. right after
//! `run` returned on its end marker, before the shell reads again) come
//! back twice, from the terminal at once and from the line editor after
//! its prompt. Expecting that second echo always would hide real output
//! that holds the typed text (a `cat` pane, an answer to a prompt, a
//! here-document, a REPL); which of the two happens cannot be known when
//! typing (the running command may read the keys itself). README: a
//! pattern not in the typed text, or a wait for the prompt first.

/// Which lines of the stream are echoes of the lines ctb typed.
#[derive(Debug, Clone)]
pub struct Echo {
    typed: Vec<String>,
    /// `typed[..due]` were echoed.
    due: usize,
}

impl Echo {
    /// For the lines ctb typed (blank ones are never told apart).
    pub fn new(typed: &[String]) -> Echo {
        Echo { typed: typed.iter().filter(|t| !t.trim().is_empty()).cloned().collect(), due: 0 }
    }

    /// Whether finished line `l` is an echo (then it is counted as one).
    pub fn skip(&mut self, l: &str) -> bool {
        let echo = self.typed.get(self.due).is_some_and(|t| l.contains(t.as_str()));
        self.due += usize::from(echo);
        echo
    }

    /// Whether the unfinished last line may be searched.
    pub fn search_partial(&self) -> bool {
        self.due == self.typed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(typed: &[&str]) -> Echo {
        Echo::new(&typed.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_echo_then_output_holding_the_text() {
        let mut e = echo(&["hello"]);
        assert!(!e.search_partial());
        assert!(e.skip("hello"));
        // A `cat` pane prints it back: output.
        assert!(!e.skip("hello"));
        assert!(e.search_partial());
    }

    #[test]
    fn lines_in_order() {
        let mut e = echo(&["cat <<'EOF'", "hello world", "", "EOF"]);
        assert!(e.skip("$ cat <<'EOF'"));
        assert!(!e.skip("unrelated"));
        assert!(e.skip("> hello world"));
        assert!(!e.search_partial());
        assert!(e.skip("> EOF"));
        assert!(!e.skip("hello world"));
        assert!(e.search_partial());
    }

    #[test]
    fn nothing_typed_nothing_skipped() {
        let mut e = echo(&[]);
        assert!(!e.skip("anything"));
        assert!(e.search_partial());
    }
}
