//! Per-user API tokens for DICOMweb (scripts, external viewers): stored by the hash the web
//! layer computes, never the token itself, so a copy of the index lets no one in. A token is
//! only as good as its user: it names the user, whose current role decides what it may do, and
//! a deleted user's tokens stop working because the user record is gone.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::index::{Index, Result, dec, enc};

/// Token hash (hex) → [`ApiToken`]. Few rows (a handful per user): listing a user's tokens
/// walks the table.
pub(crate) const API_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_tokens");

/// Stored as postcard: new fields would make stored rows unreadable, so none are added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub user: String,
    /// What the user called it ("OHIF on the reading PC").
    pub label: String,
    pub created_unix: i64,
    /// The first characters of the token, shown in lists so a user can tell them apart.
    pub prefix: String,
}

impl Index {
    /// Stores a new token under its hash (durable when this returns).
    pub fn put_api_token(&self, hash: &str, token: &ApiToken) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(API_TOKENS)?
            .insert(hash, enc(token)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// The token stored under `hash`.
    pub fn api_token(&self, hash: &str) -> Result<Option<ApiToken>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(API_TOKENS)?;
        Ok(match t.get(hash)? {
            Some(v) => Some(dec(v.value())?),
            None => None,
        })
    }

    /// A user's tokens with their hashes, oldest first.
    pub fn api_tokens_of(&self, user: &str) -> Result<Vec<(String, ApiToken)>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(API_TOKENS)?;
        let mut out = Vec::new();
        for r in t.iter()? {
            let (k, v) = r?;
            let tok: ApiToken = dec(v.value())?;
            if tok.user == user {
                out.push((k.value().to_owned(), tok));
            }
        }
        out.sort_by_key(|(_, t)| t.created_unix);
        Ok(out)
    }

    /// Removes `user`'s token whose hash is `hash`; false when there is none (or it is
    /// another user's).
    pub fn revoke_api_token(&self, user: &str, hash: &str) -> Result<bool> {
        let txn = self.begin_write()?;
        let removed = {
            let mut t = txn.open_table(API_TOKENS)?;
            let owner = match t.get(hash)? {
                Some(v) => Some(dec::<ApiToken>(v.value())?.user),
                None => None,
            };
            if owner.as_deref() == Some(user) {
                t.remove(hash)?;
                true
            } else {
                false
            }
        };
        txn.commit()?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_listed_per_user_and_revoked_only_by_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.redb")).unwrap();
        let tok = |user: &str, t: i64| ApiToken {
            user: user.into(),
            label: "script".into(),
            created_unix: t,
            prefix: "ab12".into(),
        };
        index.put_api_token("h2", &tok("kim", 2)).unwrap();
        index.put_api_token("h1", &tok("kim", 1)).unwrap();
        index.put_api_token("h3", &tok("lee", 3)).unwrap();
        let kims: Vec<String> = index
            .api_tokens_of("kim")
            .unwrap()
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        assert_eq!(kims, ["h1", "h2"]);
        assert!(!index.revoke_api_token("lee", "h1").unwrap());
        assert_eq!(index.api_token("h1").unwrap(), Some(tok("kim", 1)));
        assert!(index.revoke_api_token("kim", "h1").unwrap());
        assert_eq!(index.api_token("h1").unwrap(), None);
        assert_eq!(index.api_tokens_of("lee").unwrap().len(), 1);
    }
}
