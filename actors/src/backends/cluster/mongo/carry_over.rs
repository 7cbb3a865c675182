//! Carrying data from before user ids over: what is owned by an e-mail
//! (jobs, files, resumable uploads, webhook endpoints and deliveries)
//! becomes owned by the id of the user with that e-mail in MySQL, and a
//! job or upload keeps the e-mail as its `username`. Run at every start-up
//! until it has succeeded once (MySQL may be away); cheap when there is
//! nothing left, since only owners with an `@` are looked for (no id has
//! one). An e-mail no user has any more stays as it is, owned by nobody.
//! Reservations keyed by an e-mail are dropped: they expire in minutes.

use mongodb::Collection;
use mongodb::bson::{Bson, Document, doc};

use super::Mongo;
use crate::backends::{StoreError, UserDirectory, UsersError};

#[derive(Debug, thiserror::Error)]
pub enum CarryOverError {
    #[error("reading the owners to carry over")]
    Store(#[from] StoreError),
    #[error("the user directory")]
    Users(#[from] UsersError),
}

impl From<mongodb::error::Error> for CarryOverError {
    fn from(e: mongodb::error::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Matches an owner that is an e-mail. (The `$regex` operator, not a BSON
/// regex value: SecantusDB matches the latter on no indexed field.)
fn an_email() -> Document {
    doc! { "$regex": "@" }
}

/// A collection and the field of it that names the owner; whether it also
/// keeps the owner's e-mail as `username`.
struct Owned {
    collection: Collection<Document>,
    field: &'static str,
    username: bool,
}

impl Mongo {
    fn owned(&self) -> [Owned; 7] {
        let owned = |collection, field, username| Owned {
            collection,
            field,
            username,
        };
        [
            owned(self.jobs.clone_with_type(), "owner", true),
            owned(self.uploads.clone(), "owner", true),
            owned(self.webhook_endpoints.clone_with_type(), "owner", false),
            owned(self.webhook_deliveries.clone_with_type(), "owner", false),
            owned(self.videos.files.clone(), "metadata.owner", false),
            owned(self.mp3s.files.clone(), "metadata.owner", false),
            owned(self.waveforms.files.clone(), "metadata.owner", false),
        ]
    }

    /// Rewrites owners that are e-mails; returns how many records moved.
    pub async fn carry_over_owners(
        &self,
        users: &dyn UserDirectory,
    ) -> Result<u64, CarryOverError> {
        let mut moved = 0;
        for owned in self.owned() {
            let emails = owned
                .collection
                .distinct(owned.field, doc! { owned.field: an_email() })
                .await?;
            for email in emails.iter().filter_map(Bson::as_str) {
                let Some(user) = users.find(email).await? else {
                    continue;
                };
                let mut set = doc! { owned.field: user.id.to_hex() };
                if owned.username {
                    set.insert("username", email);
                }
                moved += owned
                    .collection
                    .update_many(doc! { owned.field: email }, doc! { "$set": set })
                    .await?
                    .modified_count;
            }
        }
        self.reservations
            .delete_many(doc! { "_id": an_email() })
            .await?;
        Ok(moved)
    }
}
