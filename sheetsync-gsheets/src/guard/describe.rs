//! The description of a target kept beside its pre-image in the scratch tab, so that a process
//! that lost a batch's answer (or crashed after sending it) can still verify and repair it.
//!
//! Every target of every guarded write carries one, so it is short: space-separated fields,
//! no JSON (whose quotes Google's body escapes a second time), keys as the hex of their
//! canonical bytes:
//!
//! ```text
//! 2 <row> <op> <expect> <action>
//! expect: k<key hex> | f<fingerprint hex> | c            (content: checked against the pre-image)
//! action: w<col>,<col>… | d | p<scratch row> | n<col>:<note text to the end>
//! ```
//!
//! Written cells are named without their values and expected content is left out: the columns
//! a write changed are enough to find the row again (by its expected key) and to recognise it
//! (the other cells equal the pre-image). Descriptions written as JSON by earlier versions are
//! still read.

use serde_json::Value as Json;
use sheetsync_core::RowKey;

use super::{Action, Expect, Target};

/// The format's first field.
const VERSION: &str = "2";

/// The short description of `t`.
pub(crate) fn describe(t: &Target) -> String {
    let expect = match &t.expect {
        Expect::Key(k) => format!("k{}", hex(k.as_bytes())),
        Expect::Fingerprint(fp) => format!("f{}", hex(fp.as_bytes())),
        Expect::Content(_) => "c".to_string(),
    };
    let action = match &t.action {
        Action::Cells(cells) => {
            let cols: Vec<String> = cells.iter().map(|(c, _)| c.to_string()).collect();
            format!("w{}", cols.join(","))
        }
        Action::Delete => "d".to_string(),
        Action::Paste(row) => format!("p{row}"),
        Action::Note(col, text) => format!("n{col}:{text}"),
    };
    format!("{VERSION} {} {} {expect} {action}", t.row, t.op)
}

/// The target a description describes (values of written cells as nulls, expected content
/// empty); `None` for anything else.
pub(crate) fn parse(s: &str) -> Option<Target> {
    if s.starts_with('{') {
        return serde_json::from_str(s).ok();
    }
    let mut fields = s.splitn(5, ' ');
    if fields.next()? != VERSION {
        return None;
    }
    let row = fields.next()?.parse().ok()?;
    let op = fields.next()?.parse().ok()?;
    let expect = parse_expect(fields.next()?)?;
    let action = parse_action(fields.next()?)?;
    Some(Target {
        op,
        row,
        expect,
        action,
    })
}

fn parse_expect(s: &str) -> Option<Expect> {
    match s.split_at_checked(1)? {
        ("k", h) if !h.is_empty() => RowKey::from_bytes(&unhex(h)?).map(Expect::Key),
        ("f", h) => String::from_utf8(unhex(h)?).ok().map(Expect::Fingerprint),
        ("c", "") => Some(Expect::Content(Vec::new())),
        _ => None,
    }
}

fn parse_action(s: &str) -> Option<Action> {
    match s.split_at_checked(1)? {
        ("w", cols) => cols
            .split(',')
            .map(|c| Some((c.parse().ok()?, Json::Null)))
            .collect::<Option<_>>()
            .map(Action::Cells),
        ("d", "") => Some(Action::Delete),
        ("p", row) => row.parse().ok().map(Action::Paste),
        ("n", rest) => {
            let (col, text) = rest.split_once(':')?;
            Some(Action::Note(col.parse().ok()?, text.to_string()))
        }
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sheetsync_core::Value;

    fn target(expect: Expect, action: Action) -> Target {
        Target {
            op: 7,
            row: 54_322,
            expect,
            action,
        }
    }

    /// What a description keeps of a target.
    fn described(t: &Target) -> Target {
        let mut short = t.clone();
        if let Action::Cells(cells) = &mut short.action {
            cells.iter_mut().for_each(|(_, v)| *v = Json::Null);
        }
        if let Expect::Content(_) = short.expect {
            short.expect = Expect::Content(Vec::new());
        }
        short
    }

    #[test]
    fn every_kind_of_target_reads_back_from_its_description() {
        let key = RowKey::from_values(&[Value::Int(54_321), Value::Text("a b:c".into())]);
        let expects = [
            Expect::Key(key),
            Expect::Fingerprint("r 12:ff".into()),
            Expect::Content(vec![json!("x"), json!(3)]),
        ];
        let actions = [
            Action::Cells(vec![(2, json!("new")), (0, json!(54_321))]),
            Action::Delete,
            Action::Paste(41),
            Action::Note(3, "held: a note with spaces, colons: and\nlines".into()),
            Action::Note(0, String::new()),
        ];
        for e in &expects {
            for a in &actions {
                let t = target(e.clone(), a.clone());
                assert_eq!(parse(&describe(&t)), Some(described(&t)), "{t:?}");
            }
        }
    }

    #[test]
    fn a_one_cell_update_is_described_in_a_few_bytes() {
        let t = target(
            Expect::Key(RowKey::from_values(&[Value::Int(54_321)])),
            Action::Cells(vec![(2, json!("x")), (0, json!(54_321))]),
        );
        let d = describe(&t);
        assert!(d.len() <= 40, "{d} is {} bytes", d.len());
        assert!(!d.contains('"'), "{d} would be escaped");
    }

    #[test]
    fn descriptions_written_as_json_are_still_read() {
        let t = described(&target(
            Expect::Key(RowKey::from_values(&[Value::Int(9)])),
            Action::Cells(vec![(1, json!("v"))]),
        ));
        let old = serde_json::to_string(&t).unwrap();
        assert_eq!(parse(&old), Some(t));
    }

    #[test]
    fn anything_else_is_not_a_description() {
        for s in [
            "",
            "2",
            "3 1 0 c d",
            "2 x 0 c d",
            "2 1 0 c",
            "2 1 0 kzz d",
            "2 1 0 k0 d",
            "2 1 0 k d",
            "2 1 0 c w",
            "2 1 0 c w1,,2",
            "2 1 0 c n1",
            "2 1 0 c dx",
            "2 1 0 q d",
            "{not json",
            "2 1 0 kff d",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
    }
}
