//! The `!commands` staff type in Matrix rooms, parsed. In a conversation room they act on that
//! conversation; in a program's queue or supervisor room, those that need a conversation take
//! its number first (`!close 42`).

use crate::risk::Risk;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Next,
    Claim,
    Accept,
    Transfer {
        to: String,
        note: String,
    },
    Escalate {
        police: bool,
        urgency: String,
        location: String,
    },
    Resolve,
    WrapUp,
    FollowUp {
        after_s: u64,
    },
    Close,
    Tag(String),
    Risk(Risk),
    Note(String),
    Canned(String),
    Join,
    /// A supervisor asks the SMS bridge for the texter's number (its one-time link).
    Reveal,
    Retention {
        purge: bool,
    },
    Help,
}

/// A parsed command with the conversation number it names (queue and supervisor rooms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub command: Command,
    pub conversation: Option<u64>,
}

/// `None` when `text` is not a command at all; `Err` with a usage line when it is one, badly
/// written.
pub fn parse(text: &str) -> Option<Result<Parsed, String>> {
    let text = text.trim();
    let rest = text.strip_prefix('!')?;
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (rest, ""),
    };
    let name = name.to_ascii_lowercase();
    let known = [
        "next",
        "claim",
        "accept",
        "transfer",
        "escalate",
        "resolve",
        "wrapup",
        "followup",
        "close",
        "tag",
        "risk",
        "note",
        "canned",
        "join",
        "reveal",
        "retention",
        "help",
    ];
    if !known.contains(&name.as_str()) {
        return None;
    }
    // A leading conversation number (`!close 42`, `!risk 42 high`).
    let (conversation, args) = match args.split_once(char::is_whitespace) {
        Some((n, rest)) if n.parse::<u64>().is_ok() && name != "followup" => {
            (n.parse().ok(), rest.trim())
        }
        _ if args.parse::<u64>().is_ok() && name != "followup" => (args.parse().ok(), ""),
        _ => (None, args),
    };
    let usage = |u: &str| Err(format!("Usage: {u}"));
    let command = match name.as_str() {
        "next" => Command::Next,
        "claim" if conversation.is_some() => Command::Claim,
        "claim" => return Some(usage("!claim <conversation number>")),
        "accept" => Command::Accept,
        "transfer" => {
            let (to, note) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
            if ruma::UserId::parse(to).is_err() {
                return Some(usage("!transfer @user:server [note]"));
            }
            Command::Transfer {
                to: to.to_owned(),
                note: note.trim().to_owned(),
            }
        }
        "escalate" => {
            let mut words = args.split_whitespace();
            let police = match words.next().map(str::to_ascii_lowercase).as_deref() {
                Some("medical") => false,
                Some("police") => true,
                _ => return Some(usage("!escalate medical|police [urgency] [location]")),
            };
            let urgency = words.next().unwrap_or("urgent").to_owned();
            let location = words.collect::<Vec<_>>().join(" ");
            Command::Escalate {
                police,
                urgency,
                location,
            }
        }
        "resolve" => Command::Resolve,
        "wrapup" => Command::WrapUp,
        "followup" => match duration_s(args) {
            Some(after_s) => Command::FollowUp { after_s },
            None => return Some(usage("!followup <when>, e.g. 30m, 2h, 3d, 1d12h")),
        },
        "close" => Command::Close,
        "tag" if !args.is_empty() => Command::Tag(args.to_lowercase()),
        "tag" => return Some(usage("!tag <tag>")),
        "risk" => match Risk::parse(args) {
            Some(r) => Command::Risk(r),
            None => return Some(usage("!risk low|medium|high|imminent")),
        },
        "note" if !args.is_empty() => Command::Note(args.to_owned()),
        "note" => return Some(usage("!note <text>")),
        "canned" if !args.is_empty() => Command::Canned(args.to_lowercase()),
        "canned" => return Some(usage("!canned <name>")),
        "join" if conversation.is_some() => Command::Join,
        "join" => return Some(usage("!join <conversation number>")),
        "reveal" if conversation.is_some() => Command::Reveal,
        "reveal" => return Some(usage("!reveal <conversation number>")),
        "retention" => Command::Retention {
            purge: args.eq_ignore_ascii_case("purge"),
        },
        _ => Command::Help,
    };
    Some(Ok(Parsed {
        command,
        conversation,
    }))
}

/// `90s`, `30m`, `2h`, `3d`, `1d12h` in seconds.
pub fn duration_s(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !num.is_empty() {
        return None;
    }
    (total > 0).then_some(total)
}

pub const HELP: &str = "Commands — in a conversation: !transfer @user [note], !accept, \
!escalate medical|police [urgency] [location], !resolve, !wrapup, !followup <when>, !close, \
!tag <tag>, !risk low|medium|high|imminent, !note <text>, !canned <name>. In the queue room: \
!next, !claim <number>. In the supervisor room: !join <number>, !reveal <number> (the \
texter's number for an emergency, through the SMS bridge: logged), and any conversation command \
with the number first (!close 42). Admins: !retention [purge]. !help shows this.";

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Parsed, String> {
        parse(s).expect("a command")
    }

    #[test]
    fn commands_parse_with_their_arguments() {
        assert_eq!(parse("hello there"), None);
        assert_eq!(parse("!unknown thing"), None);
        assert_eq!(p("!next").unwrap().command, Command::Next);
        let c = p("!claim 42").unwrap();
        assert_eq!((c.command, c.conversation), (Command::Claim, Some(42)));
        assert!(p("!claim").is_err());
        assert_eq!(
            p("!transfer @bo:hs needs Spanish").unwrap().command,
            Command::Transfer {
                to: "@bo:hs".into(),
                note: "needs Spanish".into()
            }
        );
        assert!(p("!transfer bo").is_err());
        assert_eq!(
            p("!escalate police immediate 12 Oak Street, Leeds")
                .unwrap()
                .command,
            Command::Escalate {
                police: true,
                urgency: "immediate".into(),
                location: "12 Oak Street, Leeds".into()
            }
        );
        assert!(p("!escalate fire").is_err());
        assert_eq!(
            p("!followup 1d12h").unwrap().command,
            Command::FollowUp { after_s: 129_600 }
        );
        assert!(p("!followup soon").is_err());
        let r = p("!risk 7 HIGH").unwrap();
        assert_eq!(
            (r.command, r.conversation),
            (Command::Risk(Risk::High), Some(7))
        );
        assert_eq!(
            p("!note  called back ").unwrap().command,
            Command::Note("called back".into())
        );
        assert_eq!(
            p("!retention purge").unwrap().command,
            Command::Retention { purge: true }
        );
        assert_eq!(duration_s("90s"), Some(90));
        assert_eq!(duration_s("5"), None);
        assert_eq!(duration_s("0m"), None);
    }
}
