//! Who may see and change what: the one ownership rule every entry point
//! reads a job, a page of jobs, a resumable upload, a file or a webhook
//! endpoint by (the job routes and lists, downloads, event streams, links,
//! retries, deletes, tus, the webhook routes).
//!
//! A user sees what they own; an administrator sees everyone's jobs and
//! files, but writes to nobody else's upload and manages nobody else's
//! webhooks. What a viewer may not see is answered exactly as what does
//! not exist (`None`), so an id never tells whose it is.

use crate::backends::{Backends, FileInfo, JobQuery, StoreError, WebhookStore};
use crate::domain::{
    Endpoint, EndpointId, FileId, JobId, JobRecord, JobState, Owner, Timestamp, UploadRecord,
};

/// Who asks: the owner they act as, and whether they administer the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub owner: Owner,
    pub admin: bool,
}

impl Viewer {
    /// Whether this viewer may see what `owner` owns.
    pub fn may_access(&self, owner: &Owner) -> bool {
        self.admin || self.owner == *owner
    }

    /// Whether this viewer may see the file `info` describes. A file with
    /// no owner (vidaud makes none; a foreign producer's) is nobody's to
    /// download but by a signed link.
    pub fn may_see_file(&self, info: &FileInfo) -> bool {
        info.owner
            .as_ref()
            .is_some_and(|owner| self.may_access(owner))
    }
}

/// The job `id`, unless it was deleted or the viewer may not see it.
pub async fn job(
    backends: &Backends,
    viewer: &Viewer,
    id: JobId,
) -> Result<Option<JobRecord>, StoreError> {
    Ok(job_or_tombstone(backends, viewer, id)
        .await?
        .filter(|job| job.state != JobState::Deleted))
}

/// The job `id` if the viewer may see it, deleted or not (deleting a
/// deleted job again is a success).
pub async fn job_or_tombstone(
    backends: &Backends,
    viewer: &Viewer,
    id: JobId,
) -> Result<Option<JobRecord>, StoreError> {
    Ok(backends
        .jobs
        .get(id)
        .await?
        .filter(|job| viewer.may_access(&job.owner)))
}

/// A page of the jobs `query` asks for that the viewer may see: a user's
/// own whatever `query.owner` says; an administrator's as asked (one
/// owner's, or everyone's for `None`).
pub async fn jobs(
    backends: &Backends,
    viewer: &Viewer,
    query: JobQuery,
) -> Result<Vec<JobRecord>, StoreError> {
    let query = if viewer.admin {
        query
    } else {
        JobQuery {
            owner: Some(viewer.owner.clone()),
            ..query
        }
    };
    backends.jobs.list(&query).await
}

/// The resumable upload `id`, if the viewer made it (an administrator
/// writes to nobody else's) and it has not expired unfinished.
pub async fn upload(
    backends: &Backends,
    viewer: &Viewer,
    id: FileId,
    now: Timestamp,
) -> Result<Option<UploadRecord>, StoreError> {
    Ok(backends.uploads.get(id).await?.filter(|upload| {
        upload.owner == viewer.owner && (upload.queued || upload.expires_at > now)
    }))
}

/// The webhook endpoint `id`, if it is the viewer's own.
pub async fn endpoint(
    store: &dyn WebhookStore,
    viewer: &Viewer,
    id: EndpointId,
) -> Result<Option<Endpoint>, StoreError> {
    Ok(store
        .endpoint(id)
        .await?
        .filter(|endpoint| endpoint.owner == viewer.owner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    fn viewer(admin: bool) -> Viewer {
        Viewer {
            owner: UserId::new().into(),
            admin,
        }
    }

    #[test]
    fn an_owner_sees_their_own_and_an_administrator_everyones() {
        let (user, admin) = (viewer(false), viewer(true));
        let other: Owner = UserId::new().into();
        assert!(user.may_access(&user.owner));
        assert!(!user.may_access(&other));
        assert!(!user.may_access(&Owner::Forgotten));
        assert!(!user.may_access(&Owner::Unclaimed("old@example.com".into())));
        assert!(admin.may_access(&other) && admin.may_access(&Owner::Forgotten));
        let file = |owner| FileInfo {
            id: FileId::new(),
            length: 1,
            filename: "a".into(),
            owner,
            content_type: None,
            job_id: None,
            block_size: 0,
        };
        assert!(user.may_see_file(&file(Some(user.owner.clone()))));
        assert!(!user.may_see_file(&file(Some(other))));
        assert!(!user.may_see_file(&file(None)));
        assert!(!admin.may_see_file(&file(None)));
    }
}
