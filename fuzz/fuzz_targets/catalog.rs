//! The catalog file (TOML) as an operator writes it: parsing and every check of its content.
#![no_main]

use libfuzzer_sys::fuzz_target;
use participants::catalog::Catalog;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Catalog::parse(text);
    }
});
