//! A1 notation: parsing (spec §3.2) and the normalised form echoed in responses (§3.3).
//!
//! Rows and columns are zero-based internally; ranges are half-open (`end` exclusive).

/// Largest column count Google allows (column `ZZZ`).
pub const MAX_COLUMNS: u32 = 18_278;

/// The cell part of an A1 range, before it is resolved against a grid.
///
/// `None` bounds are open (clamped to the grid on resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CellPart {
    /// First row (zero-based), if given.
    pub start_row: Option<u32>,
    /// First column (zero-based), if given.
    pub start_col: Option<u32>,
    /// Last row (zero-based, inclusive), if given.
    pub end_row: Option<u32>,
    /// Last column (zero-based, inclusive), if given.
    pub end_col: Option<u32>,
    /// The input was a single cell such as `B1` (echoed back as `B1`, not `B1:B1`).
    pub single: bool,
}

/// A parsed A1 range that still names its sheet by title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRange {
    /// Sheet title given explicitly (quotes removed), or `None` for "first visible sheet".
    pub sheet: Option<String>,
    /// Whether the title was quoted (a quoted title is always a sheet, never a cell).
    pub quoted: bool,
    /// The cell part; `None` means the whole sheet.
    pub cells: Option<CellPart>,
    /// The cell part text exactly as given (used in error messages).
    pub cells_text: String,
}

/// Converts a zero-based column index to letters (`0` → `A`, `26` → `AA`).
pub fn col_letters(mut col: u32) -> String {
    let mut out = Vec::new();
    col += 1;
    while col > 0 {
        let rem = (col - 1) % 26;
        out.push(b'A' + rem as u8);
        col = (col - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// Converts column letters to a zero-based index (`A` → `0`); `None` past `ZZZ` or on bad input.
pub fn letters_col(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 3 {
        return None;
    }
    let mut n: u32 = 0;
    for b in s.bytes() {
        let b = b.to_ascii_uppercase();
        if !b.is_ascii_uppercase() {
            return None;
        }
        n = n * 26 + u32::from(b - b'A' + 1);
    }
    if n == 0 || n > MAX_COLUMNS {
        return None;
    }
    Some(n - 1)
}

/// One endpoint of a cell part: column and/or row.
fn parse_ref(s: &str) -> Option<(Option<u32>, Option<u32>)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    if i < bytes.len() && bytes[i] == b'$' {
        i += 1;
    }
    let ls = i;
    while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
        i += 1;
    }
    let letters = &s[ls..i];
    if i < bytes.len() && bytes[i] == b'$' {
        if letters.is_empty() {
            return None;
        }
        i += 1;
    }
    let ds = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i != bytes.len() {
        return None;
    }
    let digits = &s[ds..];
    let col = if letters.is_empty() {
        None
    } else {
        Some(letters_col(letters)?)
    };
    let row = if digits.is_empty() {
        None
    } else {
        let r: u64 = digits.parse().ok()?;
        if r == 0 || r > u64::from(u32::MAX) {
            return None;
        }
        Some(r as u32 - 1)
    };
    if col.is_none() && row.is_none() {
        return None;
    }
    Some((col, row))
}

/// Parses the cell part (`A1`, `A1:B2`, `A:A`, `1:2`, `A5:A`, `A:A5`, `A1:1`).
pub fn parse_cells(s: &str) -> Option<CellPart> {
    match s.split_once(':') {
        None => {
            let (c, r) = parse_ref(s)?;
            // A bare column or row without the other coordinate is not a valid single ref.
            let (c, r) = (c?, r?);
            Some(CellPart {
                start_row: Some(r),
                start_col: Some(c),
                end_row: Some(r),
                end_col: Some(c),
                single: true,
            })
        }
        Some((a, b)) => {
            let (c1, r1) = parse_ref(a)?;
            let (c2, r2) = parse_ref(b)?;
            // `A:1` style mixes are invalid: each side needs the coordinate the other side has
            // unless it is a full cell.
            if (c1.is_none() && c2.is_some() && r2.is_none())
                || (r1.is_none() && r2.is_some() && c2.is_none())
            {
                return None;
            }
            if c1.is_none() && r1.is_some() && c2.is_some() && r2.is_some() {
                return None;
            }
            let (sr, er) = match (r1, r2) {
                (Some(a), Some(b)) => (Some(a.min(b)), Some(a.max(b))),
                (Some(a), None) => (Some(a), None),
                (None, Some(b)) => (None, Some(b)),
                (None, None) => (None, None),
            };
            let (sc, ec) = match (c1, c2) {
                (Some(a), Some(b)) => (Some(a.min(b)), Some(a.max(b))),
                (Some(a), None) => (Some(a), None),
                (None, Some(b)) => (None, Some(b)),
                (None, None) => (None, None),
            };
            Some(CellPart {
                start_row: sr,
                start_col: sc,
                end_row: er,
                end_col: ec,
                single: false,
            })
        }
    }
}

/// Splits `sheet!cells` at the last `!` outside single quotes.
fn split_bang(s: &str) -> Option<(&str, &str)> {
    let mut in_q = false;
    let mut pos = None;
    for (i, ch) in s.char_indices() {
        match ch {
            '\'' => in_q = !in_q,
            '!' if !in_q => pos = Some(i),
            _ => {}
        }
    }
    pos.map(|p| (&s[..p], &s[p + 1..]))
}

/// Strips quotes from a sheet part: `'Jon''s Data'` → `Jon's Data`. Returns (name, quoted).
fn unquote(s: &str) -> (String, bool) {
    if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
        (s[1..s.len() - 1].replace("''", "'"), true)
    } else {
        (s.to_string(), false)
    }
}

/// Parses an A1 range. Whether a bare word is a cell or a sheet title is decided later,
/// against the spreadsheet (see [`ParsedRange::cells`] being `None` with `quoted == false`).
pub fn parse(input: &str) -> Option<ParsedRange> {
    let s = input.trim();
    if s.is_empty() {
        return None;
    }
    if let Some((sheet, cells)) = split_bang(s) {
        let (name, quoted) = unquote(sheet);
        if name.is_empty() {
            return None;
        }
        let part = parse_cells(cells)?;
        return Some(ParsedRange {
            sheet: Some(name),
            quoted,
            cells: Some(part),
            cells_text: cells.to_string(),
        });
    }
    let (name, quoted) = unquote(s);
    if quoted {
        return Some(ParsedRange {
            sheet: Some(name),
            quoted: true,
            cells: None,
            cells_text: String::new(),
        });
    }
    // Unquoted without `!`: a cell range on the first sheet, or a sheet title.
    match parse_cells(s) {
        Some(part) => Some(ParsedRange {
            sheet: None,
            quoted: false,
            cells: Some(part),
            cells_text: s.to_string(),
        }),
        None => Some(ParsedRange {
            sheet: Some(name),
            quoted: false,
            cells: None,
            cells_text: String::new(),
        }),
    }
}

/// Whether `s` looks like an A1 cell or R1C1 reference (then it must be quoted as a title).
fn looks_like_ref(s: &str) -> bool {
    if parse_cells(s).is_some_and(|p| p.single) {
        return true;
    }
    let u = s.to_ascii_uppercase();
    if let Some(rest) = u.strip_prefix('R') {
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let rest2 = &rest[digits.len()..];
        if let Some(c) = rest2.strip_prefix('C') {
            return c.chars().all(|c| c.is_ascii_digit());
        }
    }
    false
}

/// Formats a sheet title for an echoed range: bare iff `^[A-Za-z_][A-Za-z0-9_]*$` and not a
/// cell reference, else quoted with inner quotes doubled.
pub fn quote_title(title: &str) -> String {
    let mut chars = title.chars();
    let simple = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        _ => false,
    };
    if simple && !looks_like_ref(title) {
        title.to_string()
    } else {
        format!("'{}'", title.replace('\'', "''"))
    }
}

/// Formats a cell (`B1`).
pub fn cell_name(row: u32, col: u32) -> String {
    format!("{}{}", col_letters(col), row + 1)
}

/// Formats a resolved range: `Sheet1!A1:D4`, or `Sheet1!B1` when `single`.
pub fn format_range(title: &str, r0: u32, c0: u32, r1: u32, c1: u32, single: bool) -> String {
    if single {
        format!("{}!{}", quote_title(title), cell_name(r0, c0))
    } else {
        format!(
            "{}!{}:{}",
            quote_title(title),
            cell_name(r0, c0),
            cell_name(r1, c1)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        for (n, s) in [(0, "A"), (25, "Z"), (26, "AA"), (701, "ZZ"), (702, "AAA")] {
            assert_eq!(col_letters(n), s);
            assert_eq!(letters_col(s), Some(n));
        }
        assert_eq!(letters_col("ZZZ"), Some(MAX_COLUMNS - 1));
        assert_eq!(letters_col("AAAA"), None);
    }

    #[test]
    fn parses_forms() {
        let p = parse("'Jon''s Data'!A1:B2").unwrap();
        assert_eq!(p.sheet.as_deref(), Some("Jon's Data"));
        assert!(p.quoted);
        let c = p.cells.unwrap();
        assert_eq!(
            (c.start_row, c.start_col, c.end_row, c.end_col),
            (Some(0), Some(0), Some(1), Some(1))
        );
        let p = parse("Sheet1!A5:A").unwrap().cells.unwrap();
        assert_eq!(
            (p.start_row, p.end_row, p.start_col, p.end_col),
            (Some(4), None, Some(0), Some(0))
        );
        let p = parse("Sheet1!1:2").unwrap().cells.unwrap();
        assert_eq!((p.start_col, p.end_col), (None, None));
        let p = parse("B3:A1").unwrap();
        assert_eq!(p.sheet, None);
        let c = p.cells.unwrap();
        assert_eq!(
            (c.start_row, c.start_col, c.end_row, c.end_col),
            (Some(0), Some(0), Some(2), Some(1))
        );
        let p = parse("My Sheet").unwrap();
        assert_eq!(p.sheet.as_deref(), Some("My Sheet"));
        assert!(p.cells.is_none());
        let p = parse("'A1'").unwrap();
        assert_eq!(p.sheet.as_deref(), Some("A1"));
        assert!(parse("Sheet1!A0").is_none());
        assert!(parse("Sheet1!").is_none());
        let p = parse("'a!b'!C3").unwrap();
        assert_eq!(p.sheet.as_deref(), Some("a!b"));
        assert!(p.cells.unwrap().single);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_title("Sheet1"), "Sheet1");
        assert_eq!(quote_title("D3"), "'D3'");
        assert_eq!(quote_title("My Sheet"), "'My Sheet'");
        assert_eq!(quote_title("Jon's"), "'Jon''s'");
        assert_eq!(quote_title("R1C1"), "'R1C1'");
        assert_eq!(format_range("Sheet1", 0, 1, 0, 1, true), "Sheet1!B1");
        assert_eq!(
            format_range("Sheet1", 0, 0, 999, 25, false),
            "Sheet1!A1:Z1000"
        );
    }
}
