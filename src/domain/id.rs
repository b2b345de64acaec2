//! Identifiers made by the service: generated Participant IDs, subject OIDs, access codes.

use rand::Rng;

/// The placeholders of a Participant ID template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Study,
    Site,
    Seq { width: usize },
}

/// A parsed Participant ID template such as `{site}-{seq:04}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTemplate {
    pieces: Vec<Piece>,
}

pub const DEFAULT_SITE_TEMPLATE: &str = "{site}-{seq:04}";
pub const DEFAULT_STUDY_TEMPLATE: &str = "{study}-{seq:04}";

impl IdTemplate {
    /// Parses a template; the error names the offending placeholder.
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = template;
        let mut has_seq = false;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Literal(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in template {template:?}"))?;
            let name = &rest[open + 1..open + close];
            let piece = match name {
                "study" => Piece::Study,
                "site" => Piece::Site,
                "seq" => Piece::Seq { width: 0 },
                _ => match name.strip_prefix("seq:0").map(str::parse::<usize>) {
                    Some(Ok(width)) if (1..=12).contains(&width) => Piece::Seq { width },
                    _ => {
                        return Err(format!(
                            "unknown placeholder {{{name}}} in template {template:?} (expected {{study}}, {{site}}, {{seq}} or {{seq:0N}})"
                        ));
                    }
                },
            };
            has_seq |= matches!(piece, Piece::Seq { .. });
            pieces.push(piece);
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("unmatched '}}' in template {template:?}"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_owned()));
        }
        if !has_seq {
            return Err(format!(
                "template {template:?} needs a {{seq}} placeholder so that IDs are unique"
            ));
        }
        Ok(Self { pieces })
    }

    /// Whether the template names `{site}`, and so applies at sites only.
    pub fn uses_site(&self) -> bool {
        self.pieces.contains(&Piece::Site)
    }

    /// Renders the ID for one sequence number.
    pub fn render(&self, study_oid: &str, site_oid: Option<&str>, seq: i64) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Study => out.push_str(study_oid),
                Piece::Site => out.push_str(site_oid.unwrap_or(study_oid)),
                Piece::Seq { width } => out.push_str(&format!("{seq:0width$}")),
            }
        }
        out
    }
}

/// The template that applies to a creation: the study's own, unless it names `{site}` and the
/// creation is at the study level; the default for the scope otherwise.
pub fn template_for(study_template: Option<&str>, at_site: bool) -> Result<IdTemplate, String> {
    if let Some(t) = study_template {
        let parsed = IdTemplate::parse(t)?;
        if at_site || !parsed.uses_site() {
            return Ok(parsed);
        }
    }
    IdTemplate::parse(if at_site {
        DEFAULT_SITE_TEMPLATE
    } else {
        DEFAULT_STUDY_TEMPLATE
    })
}

/// The first choice of subject OID: `SS_` and the first 8 upper-cased ASCII letters and digits.
pub fn subject_oid_base(subject_key: &str) -> String {
    let tail: String = subject_key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    format!("SS_{tail}")
}

/// The n-th candidate (1-based): the base, then `_2`, `_3`, …
pub fn subject_oid_candidate(base: &str, n: i64) -> String {
    if n <= 1 {
        base.to_owned()
    } else {
        format!("{base}_{n}")
    }
}

/// The inverse of `subject_oid_candidate`: which n of `base` the OID is, if it is one.
pub fn subject_oid_suffix(base: &str, oid: &str) -> Option<i64> {
    let rest = oid.strip_prefix(base)?;
    if rest.is_empty() {
        return Some(1);
    }
    let digits = rest.strip_prefix('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n >= 2)
}

/// Access codes use an alphabet without look-alike characters.
pub const ACCESS_CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
pub const ACCESS_CODE_LEN: usize = 9;

/// A fresh access code from the given (cryptographic) RNG.
pub fn access_code(rng: &mut impl Rng) -> String {
    (0..ACCESS_CODE_LEN)
        .map(|_| ACCESS_CODE_ALPHABET[rng.random_range(0..ACCESS_CODE_ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_with_padding() {
        let t = IdTemplate::parse("{site}-{seq:04}").unwrap();
        assert_eq!(t.render("S_JUNO", Some("S_OHIO"), 7), "S_OHIO-0007");
        assert_eq!(t.render("S_JUNO", Some("S_OHIO"), 12345), "S_OHIO-12345");
        let t = IdTemplate::parse("P{seq}").unwrap();
        assert_eq!(t.render("S", None, 42), "P42");
        assert!(
            IdTemplate::parse("{nope}-{seq}")
                .unwrap_err()
                .contains("{nope}")
        );
        assert!(IdTemplate::parse("{site}").is_err());
        assert!(IdTemplate::parse("{seq:4}").is_err());
    }

    #[test]
    fn a_site_template_does_not_apply_at_the_study_level() {
        let t = template_for(Some("X-{site}-{seq:03}"), false).unwrap();
        assert_eq!(t.render("S_JUNO", None, 1), "S_JUNO-0001");
        let t = template_for(Some("X-{site}-{seq:03}"), true).unwrap();
        assert_eq!(t.render("S_JUNO", Some("S_A"), 1), "X-S_A-001");
        let t = template_for(None, true).unwrap();
        assert_eq!(t.render("S_JUNO", Some("S_A"), 3), "S_A-0003");
    }

    #[test]
    fn subject_oids() {
        assert_eq!(subject_oid_base("OHIO-5"), "SS_OHIO5");
        assert_eq!(subject_oid_base("ab-cd-ef-gh-ij"), "SS_ABCDEFGH");
        assert_eq!(subject_oid_base("ОНІО-5"), "SS_5");
        assert_eq!(subject_oid_candidate("SS_X", 1), "SS_X");
        assert_eq!(subject_oid_candidate("SS_X", 3), "SS_X_3");
        for n in [1, 2, 3, 10_051] {
            assert_eq!(
                subject_oid_suffix("SS_X", &subject_oid_candidate("SS_X", n)),
                Some(n)
            );
        }
        assert_eq!(subject_oid_suffix("SS_", "SS__7"), Some(7));
        assert_eq!(subject_oid_suffix("SS_X", "SS_XY"), None);
        assert_eq!(subject_oid_suffix("SS_X", "SS_X_"), None);
        assert_eq!(subject_oid_suffix("SS_X", "SS_X_+3"), None);
        assert_eq!(
            subject_oid_suffix("SS_X", "SS_X_99999999999999999999"),
            None
        );
    }

    #[test]
    fn access_codes_use_the_alphabet() {
        let mut rng = rand::rng();
        for _ in 0..100 {
            let code = access_code(&mut rng);
            assert_eq!(code.len(), ACCESS_CODE_LEN);
            assert!(code.bytes().all(|b| ACCESS_CODE_ALPHABET.contains(&b)));
        }
    }
}
