//! What the migration did with each option: mapped (with a note when the behaviour differs
//! in a detail), not mapped (with the reason; the rest of the config still holds), or
//! refused (the config cannot be translated without changing who gets in: nothing is
//! written but this report).

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Refused,
    Unmapped,
    Mapped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub outcome: Outcome,
    pub option: String,
    /// Where it was set (`file:line`, the variable, the flag), or empty for a derived note.
    pub at: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub entries: Vec<Entry>,
    /// Environment variables the new config reads, each with why.
    pub env: Vec<(String, String)>,
}

impl Report {
    pub fn add(&mut self, outcome: Outcome, option: &str, at: &str, text: impl Into<String>) {
        self.entries.push(Entry {
            outcome,
            option: option.to_owned(),
            at: at.to_owned(),
            text: text.into(),
        });
    }

    pub fn refused(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| e.outcome == Outcome::Refused)
    }

    pub fn is_refused(&self) -> bool {
        self.refused().next().is_some()
    }

    /// The report as Markdown (`MIGRATION.md`, and stdout).
    pub fn markdown(&self) -> String {
        let mut out = String::from("# Migration from oauth2-proxy\n\n");
        if self.is_refused() {
            out += "**Refused**: the configuration cannot be translated without changing who is \
                    let in. Nothing else was written. Fix the options below and run the \
                    migration again.\n\n";
        } else {
            out += "Written: `gatehouse.yaml` and `policies/oauth2-proxy.yaml`. Every option \
                    that was set is listed below.\n\n";
        }
        let sections = [
            (Outcome::Refused, "Refused"),
            (Outcome::Unmapped, "Not mapped (with the reason)"),
            (Outcome::Mapped, "Mapped"),
        ];
        for (outcome, title) in sections {
            let mut entries: Vec<&Entry> = self
                .entries
                .iter()
                .filter(|e| e.outcome == outcome)
                .collect();
            if entries.is_empty() {
                continue;
            }
            entries.sort_by(|a, b| a.option.cmp(&b.option));
            let _ = writeln!(out, "## {title}\n");
            for e in entries {
                let at = match e.at.as_str() {
                    "" => String::new(),
                    at => format!(" ({at})"),
                };
                let _ = writeln!(out, "- `{}`{at}: {}", e.option, e.text);
            }
            out.push('\n');
        }
        if !self.env.is_empty() {
            out += "## Environment\n\nThe new configuration reads these variables; set them \
                    where Gatehouse runs:\n\n";
            for (name, why) in &self.env {
                let _ = writeln!(out, "- `{name}`: {why}");
            }
            out.push('\n');
        }
        out
    }
}
