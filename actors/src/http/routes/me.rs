//! The caller's own account (`GET /me`, `POST /me/password`,
//! `POST /me/logout-all`, `DELETE /me`) and an administrator's view of and
//! hold on others' (`GET /users`, `POST /users/{email}/disable`, `/enable`,
//! `DELETE /users/{email}`).
//!
//! A new password, logging out everywhere, disabling and deleting an
//! account bump the user's token generation: every token issued before is
//! refused, on this node at once and on every other within
//! `auth::REVOCATION_REFRESH`. A deletion also erases the account's data
//! before it answers (see `erasure`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::account::{AUTH_TIMEOUT, auth_ticket, unwrap_call};
use crate::auth::{AuthError, AuthMsg, delete_account};
use crate::backends::{User, UserLimits, UsersError};
use crate::domain::UserId;
use crate::http::AppState;
use crate::http::error::{ApiError, ProblemKind};
use crate::http::extract::Caller;
use crate::http::small_body::json;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// Bytes of videos and audio kept.
    stored_bytes: u64,
    /// Jobs queued or converting.
    active_jobs: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// Yours if an administrator set one, else `storage.quota_bytes_per_user`; 0: none.
    quota_bytes: u64,
    /// Yours if an administrator set one, else `storage.max_active_jobs_per_user`; 0: none.
    max_active_jobs: u64,
    /// The largest upload (`http.max_upload_bytes`).
    max_upload_bytes: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    email: String,
    /// Your account's stable id (what owns your jobs and files).
    id: String,
    admin: bool,
    usage: Usage,
    limits: Limits,
}

/// Who you are, what you hold, and your limits.
#[utoipa::path(
    get, path = "/me", tag = "account",
    responses((status = 200, description = "Your account", body = Me)),
    security(("bearer" = []))
)]
pub async fn me(State(app): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let owner = caller.owner();
    let stored_bytes = app.backends.blobs.usage(owner).await?;
    let active_jobs = app.backends.jobs.active_jobs(owner).await?;
    Ok(Json(Me {
        email: caller.claims.username.clone(),
        id: owner.stored(),
        admin: caller.claims.admin,
        usage: Usage {
            stored_bytes,
            active_jobs,
        },
        limits: Limits {
            quota_bytes: caller
                .account
                .limits
                .quota_bytes_or(app.storage.quota_bytes_per_user),
            max_active_jobs: caller
                .account
                .limits
                .max_active_jobs_or(app.storage.max_active_jobs_per_user),
            max_upload_bytes: app.settings.max_upload_bytes,
        },
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    current: String,
    new: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FreshToken {
    /// A token of the new generation (every earlier one is revoked).
    token: String,
}

/// A new password (the current one is asked for): every other token is
/// revoked; the answer holds a fresh one.
#[utoipa::path(
    post, path = "/me/password", tag = "account",
    request_body(content = NewPassword, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed; a fresh token", body = FreshToken),
        (status = 401, description = "The current password is wrong", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password breaks the rules", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn change_password(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<FreshToken>, ApiError> {
    let request: NewPassword = json(&body, r#"{"current": ..., "new": ...}"#)?;
    let email = caller.claims.username.clone();
    // Guessing the current password here costs what guessing at /login does.
    app.limits.check_account(&email)?;
    let ticket = auth_ticket(&app)?;
    let result = app
        .auth
        .call(
            |reply| AuthMsg::ChangePassword {
                email,
                current: request.current,
                new: request.new,
                ticket,
                reply,
            },
            Some(AUTH_TIMEOUT),
        )
        .await;
    let (token, user) = unwrap_call(result)??;
    app.standings.note(&user);
    Ok(Json(FreshToken { token }))
}

/// Revokes every token of yours, this one included.
#[utoipa::path(
    post, path = "/me/logout-all", tag = "account",
    responses((status = 204, description = "Every token of yours is revoked")),
    security(("bearer" = []))
)]
pub async fn logout_all(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    revoke(&app, &caller.claims.username, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Disables an account (admins only): it cannot log in, its tokens are revoked.
#[utoipa::path(
    post, path = "/users/{email}/disable", tag = "account",
    params(("email" = String, Path, description = "The account's e-mail, or its id")),
    responses(
        (status = 204, description = "Disabled"),
        (status = 403, description = "Not an administrator", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn disable(
    State(app): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin_only(&caller)?;
    let email = account_email(&app, &email).await?;
    revoke(&app, &email, Some(true)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enables a disabled account again (admins only); its old tokens stay revoked.
#[utoipa::path(
    post, path = "/users/{email}/enable", tag = "account",
    params(("email" = String, Path, description = "The account's e-mail, or its id")),
    responses(
        (status = 204, description = "Enabled"),
        (status = 403, description = "Not an administrator", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn enable(
    State(app): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin_only(&caller)?;
    let email = account_email(&app, &email).await?;
    revoke(&app, &email, Some(false)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Accounts per page (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    email: String,
    /// The account's stable id.
    id: String,
    /// Limits set for this account (`null`: the node's default).
    limits: UserLimits,
    admin: bool,
    disabled: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserPage {
    users: Vec<UserView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// The accounts, by e-mail (admins only).
#[utoipa::path(
    get, path = "/users", tag = "account",
    params(UserQuery),
    responses(
        (status = 200, description = "A page of accounts", body = UserPage),
        (status = 403, description = "Not an administrator", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_users(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<UserQuery>, QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
    admin_only(&caller)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 500"));
    }
    let after = query.cursor.filter(|c| !c.is_empty());
    let users = app
        .backends
        .users
        .page(after.as_deref(), limit)
        .await
        .map_err(AuthError::from)?;
    let next_cursor = (users.len() == limit as usize)
        .then(|| users.last().map(|u| u.email.clone()))
        .flatten();
    Ok(Json(UserPage {
        users: users
            .into_iter()
            .filter(|u| !u.deleted)
            .map(|u| UserView {
                id: u.id.to_hex(),
                limits: u.limits,
                email: u.email,
                admin: u.admin,
                disabled: u.disabled,
            })
            .collect(),
        next_cursor,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// Your password.
    password: String,
}

/// Deletes your account (your password is asked for): your jobs, files,
/// unfinished uploads and webhooks are removed, every token of yours is
/// revoked, and a confirmation is mailed to you.
#[utoipa::path(
    delete, path = "/me", tag = "account",
    request_body(content = Confirmation, content_type = "application/json"),
    responses(
        (status = 204, description = "Deleted, with everything in it"),
        (status = 401, description = "The password is wrong", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_me(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let request: Confirmation = json(&body, r#"{"password": ...}"#)?;
    let email = caller.claims.username.clone();
    // Guessing the password here costs what guessing at /login does.
    app.limits.check_account(&email)?;
    let ticket = auth_ticket(&app)?;
    let result = app
        .auth
        .call(
            |reply| AuthMsg::Delete {
                email,
                password: request.password,
                ticket,
                reply,
            },
            Some(AUTH_TIMEOUT),
        )
        .await;
    let tombstone = unwrap_call(result)??;
    finish(&app, &tombstone).await
}

/// Deletes an account with everything in it (admins only).
#[utoipa::path(
    delete, path = "/users/{email}", tag = "account",
    params(("email" = String, Path, description = "The account's e-mail, or its id")),
    responses(
        (status = 204, description = "Deleted, with everything in it"),
        (status = 403, description = "Not an administrator", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_user(
    State(app): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin_only(&caller)?;
    let email = account_email(&app, &email).await?;
    let tombstone = match delete_account(app.backends.users.as_ref(), &email).await {
        Err(AuthError::InvalidCredentials) => return Err(ApiError::not_found("user")),
        other => other?,
    };
    finish(&app, &tombstone).await
}

/// Erases a deleted account's data and mails the confirmation.
async fn finish(app: &AppState, tombstone: &User) -> Result<StatusCode, ApiError> {
    crate::erasure::finish_deletion(
        &app.backends,
        &app.standings,
        app.mailer.as_ref(),
        tombstone,
        &app.node_id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets one account's storage quota and active-job limit (admins only):
/// a number (0: none) replaces the node's default for this user, `null`
/// goes back to it. Uploads starting after the answer (on another node:
/// within the revocation refresh) are held to it; the audio of a
/// conversion is checked against it as it is written.
#[utoipa::path(
    put, path = "/users/{email}/limits", tag = "account",
    params(("email" = String, Path, description = "The account's e-mail, or its id")),
    request_body(content = UserLimits, content_type = "application/json"),
    responses(
        (status = 200, description = "Set; the limits as stored", body = UserLimits),
        (status = 422, description = "Not limits", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = crate::http::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn set_limits(
    State(app): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
    body: Bytes,
) -> Result<Json<UserLimits>, ApiError> {
    admin_only(&caller)?;
    let limits: UserLimits = json(
        &body,
        r#"{"quota_bytes": n or null, "max_active_jobs": n or null}"#,
    )?;
    let email = account_email(&app, &email).await?;
    let changed = app.backends.users.set_limits(&email, limits).await;
    take_in(&app, &email, changed).await?;
    Ok(Json(limits))
}

/// The e-mail of the account an administrator's path names: by e-mail
/// (as it is) or by id.
async fn account_email(app: &AppState, key: &str) -> Result<String, ApiError> {
    if key.contains('@') {
        return Ok(key.to_owned());
    }
    let id = UserId::parse(key).map_err(|_| ApiError::not_found("user"))?;
    match app
        .backends
        .users
        .find_by_id(id)
        .await
        .map_err(AuthError::from)?
    {
        Some(user) if !user.deleted => Ok(user.email),
        _ => Err(ApiError::not_found("user")),
    }
}

fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.claims.admin {
        Ok(())
    } else {
        Err(ApiError::of_kind(
            ProblemKind::Forbidden,
            "only an administrator may do this",
        ))
    }
}

/// Bumps `email`'s token generation (and sets `disabled` if given), and
/// takes the change in on this node at once.
async fn revoke(app: &AppState, email: &str, disabled: Option<bool>) -> Result<(), ApiError> {
    let changed = app.backends.users.revoke(email, disabled).await;
    take_in(app, email, changed).await
}

/// After a change to `email`'s row (`changed`: whether there was one):
/// 404 if there was none, else the row as it is now is taken in here at
/// once (the other nodes read it at their next refresh).
async fn take_in(
    app: &AppState,
    email: &str,
    changed: Result<bool, UsersError>,
) -> Result<(), ApiError> {
    if !changed.map_err(AuthError::from)? {
        return Err(ApiError::not_found("user"));
    }
    let users = &app.backends.users;
    if let Some(user) = users.find(email).await.map_err(AuthError::from)? {
        app.standings.note(&user);
    }
    Ok(())
}
