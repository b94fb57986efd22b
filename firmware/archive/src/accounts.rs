//! Web accounts, kept in the index database so that one file holds everything the appliance
//! must not lose besides the images. Hashing and sessions belong to the web layer: this only
//! stores what it is given (a PHC string, never a password).

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::index::{Index, Result, dec, enc};

pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// Password hashes that may never be chosen again (the first-boot password, which was shown on
/// a display and written to a file), with when they were retired.
pub(crate) const RETIRED_PASSWORDS: TableDefinition<&str, i64> =
    TableDefinition::new("retired_passwords");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Group {
    Admin,
    User,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Admin => "admin",
            Group::User => "user",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Argon2 PHC string.
    pub password_hash: String,
    pub group: Group,
    /// Set for the generated first admin password: the web page makes them change it.
    pub must_change_password: bool,
    pub created_unix: i64,
}

impl Index {
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(USERS)?;
        Ok(match t.get(name)? {
            Some(v) => Some(dec(v.value())?),
            None => None,
        })
    }

    /// Creates or replaces a user (durable when this returns).
    pub fn put_user(&self, name: &str, rec: &UserRecord) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(USERS)?.insert(name, enc(rec)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Creates the user only if no user of that name exists; returns whether it did.
    pub fn create_user_if_absent(&self, name: &str, rec: &UserRecord) -> Result<bool> {
        let txn = self.begin_write()?;
        let created = {
            let mut t = txn.open_table(USERS)?;
            if t.get(name)?.is_some() {
                false
            } else {
                t.insert(name, enc(rec)?.as_slice())?;
                true
            }
        };
        txn.commit()?;
        Ok(created)
    }

    pub fn delete_user(&self, name: &str) -> Result<bool> {
        let txn = self.begin_write()?;
        let existed = txn.open_table(USERS)?.remove(name)?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    /// Records a password hash (PHC string) that must not be chosen again.
    pub fn retire_password(&self, phc: &str, unix: i64) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(RETIRED_PASSWORDS)?.insert(phc, unix)?;
        txn.commit()?;
        Ok(())
    }

    /// The hashes [`Index::retire_password`] recorded.
    pub fn retired_passwords(&self) -> Result<Vec<String>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(RETIRED_PASSWORDS)?;
        let mut out = Vec::new();
        for r in t.iter()? {
            out.push(r?.0.value().to_owned());
        }
        Ok(out)
    }

    /// All users, by name.
    pub fn users(&self) -> Result<Vec<(String, UserRecord)>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(USERS)?;
        let mut out = Vec::new();
        for r in t.iter()? {
            let (k, v) = r?;
            out.push((k.value().to_owned(), dec(v.value())?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_survive_reopen_and_create_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let rec = UserRecord {
            password_hash: "$argon2id$x".into(),
            group: Group::Admin,
            must_change_password: true,
            created_unix: 1,
        };
        {
            let index = Index::open(&path).unwrap();
            assert!(index.create_user_if_absent("admin", &rec).unwrap());
            let other = UserRecord {
                password_hash: "$argon2id$y".into(),
                ..rec.clone()
            };
            assert!(!index.create_user_if_absent("admin", &other).unwrap());
        }
        let index = Index::open(&path).unwrap();
        assert_eq!(index.user("admin").unwrap(), Some(rec));
        assert_eq!(index.users().unwrap().len(), 1);
        assert!(index.delete_user("admin").unwrap());
        assert_eq!(index.user("admin").unwrap(), None);
        assert!(index.retired_passwords().unwrap().is_empty());
        index.retire_password("$argon2id$first", 5).unwrap();
        drop(index);
        let index = Index::open(&path).unwrap();
        assert_eq!(index.retired_passwords().unwrap(), vec!["$argon2id$first"]);
    }
}
