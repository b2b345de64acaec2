//! CSV cells that a spreadsheet will not run. A cell that begins with `=`, `+`, `-`, `@`, a tab
//! or a carriage return is read as a formula by Excel, LibreOffice and Google Sheets (CSV
//! injection: `=HYPERLINK(...)`, `=cmd|...`). Participant IDs and audit values may begin so, and
//! the files we write (import results, the audit export) are meant to be opened in one: such a
//! cell gets a leading `'`, which spreadsheets show as text and do not display.

use std::borrow::Cow;

/// `value`, made safe to open in a spreadsheet.
pub fn cell(value: &str) -> Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_become_text() {
        for formula in [
            "=cmd|'/C calc'!A0",
            "+HYPERLINK(\"x\")",
            "@SUM(1+1)",
            "-2+3",
            "\t=1",
            "\r=1",
        ] {
            assert_eq!(cell(formula), format!("'{formula}"));
        }
        for plain in ["OHIO-5", "", "a=b", "'quoted", "Ōkafor"] {
            assert_eq!(cell(plain), plain);
        }
    }
}
