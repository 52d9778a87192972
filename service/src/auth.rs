//! API keys: stored as SHA-256 hashes, compared in constant time.
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One accepted key.
#[derive(Clone)]
pub struct ApiKey {
    /// Who it belongs to (recorded as the caller of jobs and signatures).
    pub name: String,
    hash: [u8; 32],
    /// May read every job (not only its own).
    pub admin: bool,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// The accepted keys.
#[derive(Clone, Debug, Default)]
pub struct ApiKeys(Vec<ApiKey>);

/// The hash line for `key` (what `codeseal-service hash-key` prints).
pub fn hash_line(name: &str, key: &str) -> String {
    format!(
        "{name} {}",
        hex::encode(Sha256::digest(key.trim().as_bytes()))
    )
}

impl ApiKeys {
    /// Parses lines `NAME SHA256HEX [admin]`; `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let bad = || format!("API keys line {}: expected `NAME SHA256HEX [admin]`", i + 1);
            if f.len() < 2 || f.len() > 3 || (f.len() == 3 && f[2] != "admin") {
                return Err(bad());
            }
            let mut hash = [0u8; 32];
            hex::decode_to_slice(f[1], &mut hash).map_err(|_| bad())?;
            keys.push(ApiKey {
                name: f[0].to_string(),
                hash,
                admin: f.len() == 3,
            });
        }
        if keys.is_empty() {
            return Err("no API keys".into());
        }
        Ok(Self(keys))
    }

    /// One admin key with the given secret (the embedded default's generated key).
    pub fn single(name: &str, secret: &str) -> Self {
        Self(vec![ApiKey {
            name: name.to_string(),
            hash: Sha256::digest(secret.trim().as_bytes()).into(),
            admin: true,
        }])
    }

    /// The key matching `presented`; every stored hash is compared, in constant time. An
    /// empty set (workers, which serve no HTTP) matches nothing.
    pub fn check(&self, presented: &str) -> Option<&ApiKey> {
        let h: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        let mut found = None;
        for k in &self.0 {
            if bool::from(k.hash.ct_eq(&h)) {
                found = Some(k);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_by_hash_only() {
        let line = hash_line("ci", "s3cret");
        let keys = ApiKeys::parse(&format!(
            "# comment\n{line}\nops {} admin\n",
            "00".repeat(32)
        ))
        .unwrap();
        let k = keys.check("s3cret").unwrap();
        assert_eq!((k.name.as_str(), k.admin), ("ci", false));
        assert!(keys.check("s3cret!").is_none());
        assert!(keys.check("").is_none());
        assert!(!format!("{keys:?}").contains(&line[3..]));
        assert!(ApiKeys::parse("ci nothex").is_err());
        assert!(ApiKeys::parse("ci 00 root").is_err());
        assert!(ApiKeys::parse("# only comments").is_err());
    }
}
