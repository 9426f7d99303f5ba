//! Reference shifting: how the references written in a formula follow a structural change of
//! the grid (rows or columns inserted, deleted or moved) and a copy and paste (an offset), as
//! Sheets rewrites them. This works on formula text and needs no evaluator.

use crate::a1;

/// A structural change references must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    /// Rows (true) or columns.
    pub rows: bool,
    /// First index inserted or deleted (zero-based).
    pub at: u32,
    /// How many.
    pub n: u32,
    /// Insertion (true) or deletion.
    pub insert: bool,
}

#[derive(Debug, Clone, Copy)]
struct Endpoint {
    col: Option<u32>,
    col_abs: bool,
    row: Option<u32>,
    row_abs: bool,
}

fn parse_endpoint(chars: &[char], mut i: usize) -> Option<(Endpoint, usize)> {
    let col_abs = chars.get(i) == Some(&'$');
    if col_abs {
        i += 1;
    }
    let ls = i;
    while i < chars.len() && chars[i].is_ascii_alphabetic() && i - ls < 4 {
        i += 1;
    }
    let letters: String = chars[ls..i].iter().collect();
    let row_abs = chars.get(i) == Some(&'$') && !letters.is_empty();
    if row_abs {
        i += 1;
    }
    let ds = i;
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    let digits: String = chars[ds..i].iter().collect();
    if letters.is_empty() && digits.is_empty() {
        return None;
    }
    if col_abs && letters.is_empty() {
        // `$5` style absolute row.
        let row: u32 = digits.parse().ok()?;
        return Some((
            Endpoint {
                col: None,
                col_abs: false,
                row: Some(row.checked_sub(1)?),
                row_abs: true,
            },
            i,
        ));
    }
    let col = if letters.is_empty() {
        None
    } else {
        Some(a1::letters_col(&letters)?)
    };
    let row = if digits.is_empty() {
        None
    } else {
        Some(digits.parse::<u32>().ok()?.checked_sub(1)?)
    };
    Some((
        Endpoint {
            col,
            col_abs,
            row,
            row_abs,
        },
        i,
    ))
}

fn emit(e: &Endpoint) -> String {
    let mut s = String::new();
    if let Some(c) = e.col {
        if e.col_abs {
            s.push('$');
        }
        s.push_str(&a1::col_letters(c));
    }
    if let Some(r) = e.row {
        if e.row_abs {
            s.push('$');
        }
        s.push_str(&(r + 1).to_string());
    }
    s
}

/// Moves an index for a shift; `None` if it was deleted.
fn shift_index(i: u32, s: &Shift) -> Option<u32> {
    if s.insert {
        Some(if i >= s.at { i + s.n } else { i })
    } else if i >= s.at && i < s.at + s.n {
        None
    } else if i >= s.at + s.n {
        Some(i - s.n)
    } else {
        Some(i)
    }
}

/// Walks the cell references of a formula (outside string literals; function names and other
/// identifiers are left alone). `f` gets each reference's sheet name (if written), its first
/// endpoint and, for a range, its second; it answers the new text after the sheet prefix, or
/// `None` to keep the reference as written.
fn rewrite_references(
    formula: &str,
    mut f: impl FnMut(Option<&str>, &Endpoint, Option<&Endpoint>) -> Option<String>,
) -> String {
    let chars: Vec<char> = formula.chars().collect();
    let mut out = String::with_capacity(formula.len());
    let mut i = 0;
    let mut in_str = false;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            out.push(c);
            if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if c == '"' {
            in_str = true;
            out.push(c);
            i += 1;
            continue;
        }
        if follows_identifier(&chars, i) {
            out.push(c);
            i += 1;
            continue;
        }
        let (sheet, j) = sheet_prefix(&chars, i);
        let Some((e1, e2, k)) = reference_at(&chars, j) else {
            out.push(c);
            i += 1;
            continue;
        };
        if !is_reference(&e1, e2.as_ref(), chars.get(k)) {
            // Not a reference (function name, identifier): copy the word as is.
            let k = word_end(&chars, i).max(i + 1);
            out.extend(&chars[i..k]);
            i = k;
            continue;
        }
        let prefix: String = chars[i..j].iter().collect();
        match f(sheet.as_deref(), &e1, e2.as_ref()) {
            Some(text) => {
                out.push_str(&prefix);
                out.push_str(&text);
            }
            None => out.extend(&chars[i..k]),
        }
        i = k;
    }
    out
}

/// Whether position `i` continues a word (so it cannot start a reference).
fn follows_identifier(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || matches!(chars[i - 1], '_' | '.' | '$'))
}

/// A sheet prefix at `i` (`Name!` or `'Quoted name'!`): its name and where the reference
/// after it starts; without one, `(None, i)`.
fn sheet_prefix(chars: &[char], i: usize) -> (Option<String>, usize) {
    let c = chars[i];
    if c == '\'' {
        let mut k = i + 1;
        let mut name = String::new();
        let mut closed = false;
        while k < chars.len() {
            if chars[k] == '\'' {
                if chars.get(k + 1) == Some(&'\'') {
                    name.push('\'');
                    k += 2;
                    continue;
                }
                closed = true;
                k += 1;
                break;
            }
            name.push(chars[k]);
            k += 1;
        }
        if closed && chars.get(k) == Some(&'!') {
            return (Some(name), k + 1);
        }
    } else if c.is_alphanumeric() || c == '_' {
        let mut k = i;
        while k < chars.len() && (chars[k].is_alphanumeric() || chars[k] == '_') {
            k += 1;
        }
        if chars.get(k) == Some(&'!') {
            return (Some(chars[i..k].iter().collect()), k + 1);
        }
    }
    (None, i)
}

/// The endpoint at `j` and, after a `:`, a second one; with the index after the last.
fn reference_at(chars: &[char], j: usize) -> Option<(Endpoint, Option<Endpoint>, usize)> {
    let (e1, mut k) = parse_endpoint(chars, j)?;
    let mut e2 = None;
    if chars.get(k) == Some(&':') {
        if let Some((e, k2)) = parse_endpoint(chars, k + 1) {
            e2 = Some(e);
            k = k2;
        }
    }
    Some((e1, e2, k))
}

/// Whether the endpoints form a cell or range reference: a cell names a column and a row, a
/// range's ends agree on what they name, and no word, call or sheet mark follows.
fn is_reference(e1: &Endpoint, e2: Option<&Endpoint>, next: Option<&char>) -> bool {
    let next_ident =
        next.is_some_and(|ch| ch.is_alphanumeric() || matches!(ch, '_' | '(' | '.' | '!'));
    let valid = match e2 {
        None => e1.col.is_some() && e1.row.is_some(),
        Some(e2) => {
            (e1.col.is_some() == e2.col.is_some() || e1.row.is_some() == e2.row.is_some())
                && (e1.col.is_some() || e1.row.is_some())
        }
    };
    valid && !next_ident
}

/// The end of the word starting at `i` (letters, digits, `_`, `.`, `$`).
fn word_end(chars: &[char], i: usize) -> usize {
    let mut k = i;
    while k < chars.len() && (chars[k].is_alphanumeric() || matches!(chars[k], '_' | '.' | '$')) {
        k += 1;
    }
    k
}

/// Rewrites the references of `formula` (which lives on sheet `own`) that point at sheet
/// `target` after rows/columns were inserted or deleted there, as Sheets does: references
/// move, ranges grow or shrink, references to deleted cells become `#REF!`.
pub fn shift_references(formula: &str, own: &str, target: &str, shift: &Shift) -> String {
    rewrite_references(formula, |sheet, e1, e2| {
        if sheet.unwrap_or(own) != target {
            return None;
        }
        let get = |e: &Endpoint| if shift.rows { e.row } else { e.col };
        let set = |e: &mut Endpoint, v: u32| {
            if shift.rows {
                e.row = Some(v)
            } else {
                e.col = Some(v)
            }
        };
        let replaced = match e2.copied() {
            None => {
                let mut e = *e1;
                match get(&e).map(|v| shift_index(v, shift)) {
                    Some(None) => "#REF!".to_string(),
                    Some(Some(v)) => {
                        set(&mut e, v);
                        emit(&e)
                    }
                    None => emit(&e),
                }
            }
            Some(e2) => {
                let (mut a, mut b) = (*e1, e2);
                match (get(&a), get(&b)) {
                    (Some(x), Some(y)) => {
                        let (lo, hi) = (x.min(y), x.max(y));
                        let new_lo = if shift.insert {
                            shift_index(lo, shift)
                        } else {
                            // A deleted start snaps to the first surviving index.
                            (lo..=hi).find_map(|v| shift_index(v, shift))
                        };
                        let new_hi = if shift.insert {
                            shift_index(hi, shift)
                        } else {
                            (lo..=hi).rev().find_map(|v| shift_index(v, shift))
                        };
                        match (new_lo, new_hi) {
                            (Some(l), Some(h)) => {
                                set(&mut a, l);
                                set(&mut b, h);
                                format!("{}:{}", emit(&a), emit(&b))
                            }
                            _ => "#REF!".to_string(),
                        }
                    }
                    _ => format!("{}:{}", emit(&a), emit(&b)),
                }
            }
        };
        Some(replaced)
    })
}

/// Moves the relative parts of an endpoint by (`dr`, `dc`); `None` when it leaves the grid.
fn offset_endpoint(e: &Endpoint, dr: i64, dc: i64) -> Option<Endpoint> {
    let move_by = |v: Option<u32>, abs: bool, d: i64| -> Option<Option<u32>> {
        match v {
            Some(x) if !abs => u32::try_from(i64::from(x) + d).ok().map(Some),
            other => Some(other),
        }
    };
    Some(Endpoint {
        col: move_by(e.col, e.col_abs, dc)?,
        row: move_by(e.row, e.row_abs, dr)?,
        ..*e
    })
}

/// Rewrites a formula copied `dr` rows down and `dc` columns right (negative: up/left), as a
/// copy and paste does: relative references move by the offset whatever sheet they name,
/// absolute parts (`$A`, `$1`) stay, and a reference moved off the top or left becomes `#REF!`.
pub fn offset_references(formula: &str, dr: i64, dc: i64) -> String {
    if dr == 0 && dc == 0 {
        return formula.to_string();
    }
    rewrite_references(formula, |_, e1, e2| {
        let a = offset_endpoint(e1, dr, dc);
        Some(match e2 {
            None => a.map_or_else(|| "#REF!".to_string(), |a| emit(&a)),
            Some(e2) => match (a, offset_endpoint(e2, dr, dc)) {
                (Some(a), Some(b)) => format!("{}:{}", emit(&a), emit(&b)),
                _ => "#REF!".to_string(),
            },
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins_rows(at: u32, n: u32) -> Shift {
        Shift {
            rows: true,
            at,
            n,
            insert: true,
        }
    }

    fn del_rows(at: u32, n: u32) -> Shift {
        Shift {
            rows: true,
            at,
            n,
            insert: false,
        }
    }

    #[test]
    fn copied_references_move_by_the_offset() {
        assert_eq!(offset_references("=A1+B2*2", 3, 1), "=B4+C5*2");
        assert_eq!(offset_references("=$A1+A$1+$A$1", 2, 2), "=$A3+C$1+$A$1");
        assert_eq!(offset_references("=SUM(A1:B2)", 1, 0), "=SUM(A2:B3)");
        assert_eq!(
            offset_references("=SUM(A:A)+SUM(1:2)", 5, 1),
            "=SUM(B:B)+SUM(6:7)"
        );
        assert_eq!(
            offset_references("=Other!A1+'My Sheet'!B2", 1, 0),
            "=Other!A2+'My Sheet'!B3"
        );
        assert_eq!(offset_references("=A2-1", -1, 0), "=A1-1");
        assert_eq!(offset_references("=A1+1", -1, 0), "=#REF!+1");
        assert_eq!(offset_references("=SUM(A1:A3)", 0, -1), "=SUM(#REF!)");
        assert_eq!(
            offset_references("=LOG10(A1)&\"A1\"", 1, 0),
            "=LOG10(A2)&\"A1\""
        );
        assert_eq!(offset_references("=A1", 0, 0), "=A1");
    }

    #[test]
    fn references_follow_rows() {
        assert_eq!(
            shift_references("=SUM(B2,B4)", "S", "S", &ins_rows(1, 1)),
            "=SUM(B3,B5)"
        );
        assert_eq!(
            shift_references("=SUM(A1:A10)", "S", "S", &ins_rows(4, 2)),
            "=SUM(A1:A12)"
        );
        assert_eq!(
            shift_references("=$A$5+A1", "S", "S", &ins_rows(0, 1)),
            "=$A$6+A2"
        );
        assert_eq!(
            shift_references("=B3*2", "S", "S", &del_rows(2, 1)),
            "=#REF!*2"
        );
        assert_eq!(
            shift_references("=SUM(A2:A5)", "S", "S", &del_rows(1, 2)),
            "=SUM(A2:A3)"
        );
        assert_eq!(
            shift_references("=Other!A5+A5", "S", "Other", &ins_rows(0, 1)),
            "=Other!A6+A5"
        );
        assert_eq!(
            shift_references("='My Sheet'!A5", "S", "My Sheet", &ins_rows(0, 1)),
            "='My Sheet'!A6"
        );
        assert_eq!(
            shift_references("=CONCATENATE(\"A1\",A1)", "S", "S", &ins_rows(0, 1)),
            "=CONCATENATE(\"A1\",A2)"
        );
        assert_eq!(
            shift_references("=LOG10(A1)", "S", "S", &ins_rows(0, 1)),
            "=LOG10(A2)"
        );
        assert_eq!(
            shift_references("=SUM(A:A)", "S", "S", &ins_rows(0, 1)),
            "=SUM(A:A)"
        );
        assert_eq!(
            shift_references(
                "=B1+C1",
                "S",
                "S",
                &Shift {
                    rows: false,
                    at: 1,
                    n: 1,
                    insert: true
                }
            ),
            "=C1+D1"
        );
    }
}
