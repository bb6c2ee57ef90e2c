//! The one-line JSON reply every one-shot command prints.

use serde_json::{Map, Value};

use crate::util::now_rfc3339;

/// A command's reply: `status`, `command`, `session`, `pane_id`, `output`,
/// `timestamp`, plus the command's own fields.
#[derive(Debug)]
pub struct Reply {
    command: &'static str,
    session: Option<String>,
    pane_id: Option<String>,
    output: Value,
    extra: Map<String, Value>,
}

impl Reply {
    pub fn new(command: &'static str) -> Self {
        Reply { command, session: None, pane_id: None, output: Value::Null, extra: Map::new() }
    }

    pub fn session(mut self, s: impl Into<String>) -> Self {
        self.session = Some(s.into());
        self
    }

    pub fn pane(mut self, p: impl Into<String>) -> Self {
        self.pane_id = Some(p.into());
        self
    }

    pub fn output(mut self, v: impl Into<Value>) -> Self {
        self.output = v.into();
        self
    }

    pub fn field(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.extra.insert(k.to_owned(), v.into());
        self
    }

    fn envelope(self, status: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("status".into(), status.into());
        m.insert("command".into(), self.command.into());
        m.insert("session".into(), self.session.map_or(Value::Null, Value::from));
        m.insert("pane_id".into(), self.pane_id.map_or(Value::Null, Value::from));
        m.insert("output".into(), self.output);
        m.insert("timestamp".into(), now_rfc3339().into());
        for (k, v) in self.extra {
            m.insert(k, v);
        }
        m
    }

    /// The success line.
    pub fn success(self) -> String {
        Value::Object(self.envelope("success")).to_string()
    }

    /// The error line, with `error` set to a sentence.
    pub fn error(self, err: &anyhow::Error) -> String {
        let mut m = self.envelope("error");
        m.insert("error".into(), format!("{err:#}").into());
        Value::Object(m).to_string()
    }
}

/// A failed command: the reply to print (with what is known) and why.
#[derive(Debug)]
pub struct Failure {
    pub reply: Reply,
    pub error: anyhow::Error,
}

/// What a one-shot command ends with.
pub type Outcome = Result<Reply, Box<Failure>>;

/// Wraps an error with the reply to print for it.
pub fn fail(reply: Reply, error: anyhow::Error) -> Box<Failure> {
    Box::new(Failure { reply, error })
}
