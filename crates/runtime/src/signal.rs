//! Signals by name and number, as images (`STOPSIGNAL`) and pods (`lifecycle.stopSignal`)
//! name them: `SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Linux's numbering (the same on x86-64, arm64 and the other "generic" architectures).
const NAMES: [(&str, i32); 34] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];
/// glibc reserves 32 and 33, so `SIGRTMIN` as programs see it is 34.
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// A signal number, parsed from a name or number and printed by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Signal(i32);

impl Signal {
    pub const TERM: Signal = Signal(15);
    pub const KILL: Signal = Signal(9);

    /// Parses `SIGTERM`, `TERM`, `sigterm`, `15`, `SIGRTMIN`, `RTMIN+2`, `SIGRTMAX-1`.
    pub fn parse(text: &str) -> Result<Signal, String> {
        let invalid = || format!("{text:?} is not a signal name or number");
        let trimmed = text.trim();
        if let Ok(number) = trimmed.parse::<i32>() {
            return Signal::from_number(number).ok_or_else(invalid);
        }
        let upper = trimmed.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some((_, number)) = NAMES.iter().find(|(n, _)| *n == name) {
            return Ok(Signal(*number));
        }
        let realtime = |rest: &str, base: i32| -> Option<Signal> {
            let number = match rest.as_bytes().first() {
                None => base,
                Some(b'+') => base.checked_add(rest[1..].parse::<i32>().ok()?)?,
                Some(b'-') => base.checked_sub(rest[1..].parse::<i32>().ok()?)?,
                Some(_) => return None,
            };
            (RTMIN..=RTMAX).contains(&number).then_some(Signal(number))
        };
        let parsed = if let Some(rest) = name.strip_prefix("RTMIN") {
            realtime(rest, RTMIN)
        } else if let Some(rest) = name.strip_prefix("RTMAX") {
            realtime(rest, RTMAX)
        } else {
            None
        };
        parsed.ok_or_else(invalid)
    }

    /// A signal by number, if it is one (1 to 64, less glibc's reserved 32 and 33).
    pub fn from_number(number: i32) -> Option<Signal> {
        ((1..=31).contains(&number) || (RTMIN..=RTMAX).contains(&number)).then_some(Signal(number))
    }

    pub fn number(self) -> i32 {
        self.0
    }

    /// `SIGTERM`, `SIGRTMIN+3`.
    pub fn name(self) -> String {
        match NAMES.iter().find(|(_, n)| *n == self.0) {
            Some((name, _)) => format!("SIG{name}"),
            None if self.0 == RTMIN => "SIGRTMIN".into(),
            None => format!("SIGRTMIN+{}", self.0 - RTMIN),
        }
    }
}

impl Default for Signal {
    /// What stops a container whose image and pod name no signal.
    fn default() -> Signal {
        Signal::TERM
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl TryFrom<String> for Signal {
    type Error = String;
    fn try_from(text: String) -> Result<Signal, String> {
        Signal::parse(&text)
    }
}

impl From<Signal> for String {
    fn from(signal: Signal) -> String {
        signal.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        for (text, number) in [
            ("SIGTERM", 15),
            ("TERM", 15),
            ("sigusr1", 10),
            ("9", 9),
            ("SIGIOT", 6),
            ("SIGRTMIN", 34),
            ("RTMIN+3", 37),
            ("SIGRTMAX-1", 63),
            ("SIGRTMAX", 64),
        ] {
            assert_eq!(
                Signal::parse(text).map(Signal::number),
                Ok(number),
                "{text}"
            );
        }
        for text in [
            "", "SIGFOO", "0", "32", "65", "RTMIN+31", "RTMAX+1", "RTMINX",
        ] {
            let err = Signal::parse(text).unwrap_err();
            assert!(err.contains(&format!("{text:?}")), "{err}");
        }
    }

    #[test]
    fn prints_canonical_names() {
        assert_eq!(Signal::parse("usr1").unwrap().to_string(), "SIGUSR1");
        assert_eq!(Signal::parse("6").unwrap().to_string(), "SIGABRT");
        assert_eq!(Signal::parse("36").unwrap().to_string(), "SIGRTMIN+2");
        assert_eq!(serde_json::to_string(&Signal::KILL).unwrap(), "\"SIGKILL\"");
        assert_eq!(
            serde_json::from_str::<Signal>("\"SIGQUIT\"")
                .unwrap()
                .number(),
            3
        );
    }
}
