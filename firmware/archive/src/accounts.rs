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
/// When each user last logged in (Unix seconds). Apart from `USERS` because those records are
/// postcard, where a new field would make every stored record unreadable.
pub(crate) const LAST_LOGINS: TableDefinition<&str, i64> = TableDefinition::new("last_logins");
/// Each user's chosen page language (a tag such as `ko`; absent: the browser's). Apart from
/// `USERS` for the same reason as `LAST_LOGINS`.
pub(crate) const LANGUAGES: TableDefinition<&str, &str> = TableDefinition::new("user_languages");

/// A web account's role. Stored by variant index (postcard), so new roles go at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Group {
    Admin,
    /// Staff: search, view and download images (reception, technologists).
    User,
    /// What staff may, and write the physician's report.
    Physician,
    /// What staff may, and change archived data: patient and study corrections, merges,
    /// deletions, resolving conflicting copies.
    Editor,
}

/// What a role may do. The pages ask for a right, never for a role, so a new role is one
/// line in [`Group::allows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    /// Search, study pages, the viewer, downloads.
    View,
    /// Write and sign the physician's report of a study.
    Report,
    /// Change, merge, delete or resolve archived data.
    Edit,
    /// Users, DICOM peers, certificates, the audit trail, settings.
    Administer,
}

impl Group {
    /// Every role, in the order the users page offers them.
    pub const ALL: [Group; 4] = [Group::User, Group::Physician, Group::Editor, Group::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Admin => "admin",
            Group::User => "user",
            Group::Physician => "physician",
            Group::Editor => "editor",
        }
    }

    pub fn parse(text: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.as_str() == text)
    }

    pub fn allows(self, right: Right) -> bool {
        matches!(
            (self, right),
            (Group::Admin, _)
                | (_, Right::View)
                | (Group::Physician, Right::Report)
                | (Group::Editor, Right::Edit)
        )
    }

    /// One line for the users and account pages.
    pub fn describe(self) -> &'static str {
        match self {
            Group::User => "search, view and download images",
            Group::Physician => "as user, and write the physician's report",
            Group::Editor => "as user, and correct, merge and delete archived data",
            Group::Admin => "everything, including users, peers, certificates and the audit trail",
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
        txn.open_table(LAST_LOGINS)?.remove(name)?;
        txn.open_table(LANGUAGES)?.remove(name)?;
        txn.commit()?;
        Ok(existed)
    }

    /// Notes a successful login, for the admins' user list.
    pub fn record_login(&self, name: &str, unix: i64) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(LAST_LOGINS)?.insert(name, unix)?;
        txn.commit()?;
        Ok(())
    }

    /// The page language a user chose (`None`: follow the browser).
    pub fn user_language(&self, name: &str) -> Result<Option<String>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(LANGUAGES)?;
        Ok(t.get(name)?.map(|v| v.value().to_owned()))
    }

    /// Sets (or with `None` forgets) a user's page language, durable when this returns.
    pub fn set_user_language(&self, name: &str, tag: Option<&str>) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(LANGUAGES)?;
            match tag {
                Some(tag) => {
                    t.insert(name, tag)?;
                }
                None => {
                    t.remove(name)?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every user's last login, by name (users who never logged in are absent).
    pub fn last_logins(&self) -> Result<std::collections::HashMap<String, i64>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(LAST_LOGINS)?;
        let mut out = std::collections::HashMap::new();
        for r in t.iter()? {
            let (k, v) = r?;
            out.insert(k.value().to_owned(), v.value());
        }
        Ok(out)
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
    fn a_language_is_kept_cleared_and_forgotten_with_its_user() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("index.redb")).unwrap();
        assert_eq!(idx.user_language("kim").unwrap(), None);
        idx.set_user_language("kim", Some("ko")).unwrap();
        assert_eq!(idx.user_language("kim").unwrap().as_deref(), Some("ko"));
        idx.set_user_language("kim", None).unwrap();
        assert_eq!(idx.user_language("kim").unwrap(), None);
        idx.set_user_language("kim", Some("en")).unwrap();
        idx.delete_user("kim").unwrap();
        assert_eq!(idx.user_language("kim").unwrap(), None);
    }

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
        assert_eq!(index.user("admin").unwrap(), Some(rec.clone()));
        assert_eq!(index.users().unwrap().len(), 1);
        assert!(index.delete_user("admin").unwrap());
        assert_eq!(index.user("admin").unwrap(), None);
        assert!(index.retired_passwords().unwrap().is_empty());
        index.retire_password("$argon2id$first", 5).unwrap();
        drop(index);
        let index = Index::open(&path).unwrap();
        assert_eq!(index.retired_passwords().unwrap(), vec!["$argon2id$first"]);
        assert!(index.last_logins().unwrap().is_empty());
        index.put_user("admin", &rec).unwrap();
        index.record_login("admin", 7).unwrap();
        assert_eq!(index.last_logins().unwrap().get("admin"), Some(&7));
        index.delete_user("admin").unwrap();
        assert!(index.last_logins().unwrap().is_empty());
    }

    #[test]
    fn roles_keep_their_stored_form_and_rights() {
        // Records written before there were four roles must still read back as they were.
        assert_eq!(enc(&Group::Admin).unwrap(), [0]);
        assert_eq!(enc(&Group::User).unwrap(), [1]);
        for g in Group::ALL {
            assert_eq!(Group::parse(g.as_str()), Some(g));
            assert!(g.allows(Right::View));
            assert_eq!(g.allows(Right::Administer), g == Group::Admin);
        }
        assert_eq!(Group::parse("Admin"), None);
        assert!(Group::Physician.allows(Right::Report));
        assert!(!Group::Physician.allows(Right::Edit));
        assert!(Group::Editor.allows(Right::Edit));
        assert!(!Group::Editor.allows(Right::Report));
        assert!(!Group::User.allows(Right::Report) && !Group::User.allows(Right::Edit));
    }
}
