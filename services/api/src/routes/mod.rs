//! The routes under `/api/v1`, one module per resource. Each handler carries its OpenAPI
//! description (`#[utoipa::path]`) and is registered through `utoipa_axum::routes!`, so a
//! route cannot exist without appearing in the document — which is what the tenancy test
//! walks.

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::ApiState;

pub mod accounts;
pub mod admin;
pub mod charts;
pub mod controls;
pub mod copy;
pub mod history;
pub mod notifications;
pub mod paging;
pub mod plans;
pub mod recorders;
pub mod rules;
pub mod session;
pub mod status;
pub mod traders;
pub mod views;

/// Every route of `/api/v1` with its documentation.
pub fn api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::me))
        .routes(routes!(session::password_reset))
        .routes(routes!(session::password_reset_confirm))
        .routes(routes!(session::create_token, session::list_tokens))
        .routes(routes!(session::delete_token))
        .routes(routes!(accounts::list, accounts::create))
        .routes(routes!(accounts::get, accounts::update, accounts::delete))
        .routes(routes!(accounts::set_credentials))
        .routes(routes!(accounts::test))
        .routes(routes!(accounts::sub_accounts))
        .routes(routes!(accounts::all_sub_accounts))
        .routes(routes!(accounts::update_sub_account))
        .routes(routes!(recorders::list, recorders::create))
        .routes(routes!(
            recorders::get,
            recorders::update,
            recorders::delete
        ))
        .routes(routes!(recorders::rotate_token))
        .routes(routes!(recorders::webhook))
        .routes(routes!(traders::list, traders::create))
        .routes(routes!(traders::get, traders::update, traders::delete))
        .routes(routes!(history::signals))
        .routes(routes!(history::signal))
        .routes(routes!(history::intent))
        .routes(routes!(history::executions))
        .routes(routes!(history::trades))
        .routes(routes!(history::paper))
        .routes(routes!(copy::list_leaders, copy::create_leader))
        .routes(routes!(
            copy::get_leader,
            copy::update_leader,
            copy::delete_leader
        ))
        .routes(routes!(copy::list_followers, copy::add_follower))
        .routes(routes!(
            copy::get_follower,
            copy::update_follower,
            copy::delete_follower
        ))
        .routes(routes!(copy::unlock_follower))
        .routes(routes!(copy::copy_log))
        .routes(routes!(
            notifications::list_channels,
            notifications::create_channel
        ))
        .routes(routes!(
            notifications::update_channel,
            notifications::delete_channel
        ))
        .routes(routes!(notifications::test_channel))
        .routes(routes!(notifications::rotate_secret))
        .routes(routes!(notifications::deliveries))
        .routes(routes!(controls::manual_order))
        .routes(routes!(controls::flatten_one))
        .routes(routes!(controls::flatten_all))
        .routes(routes!(controls::kill_one))
        .routes(routes!(controls::kill_all))
        .routes(routes!(status::status))
        .routes(routes!(charts::pnl))
        .routes(routes!(charts::latency))
        .routes(routes!(plans::list))
        .routes(routes!(plans::subscription))
        .routes(routes!(plans::upsert))
        .routes(routes!(plans::whop_webhook))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(
            admin::get_user,
            admin::update_user,
            admin::delete_user
        ))
        .routes(routes!(admin::audit))
        .routes(routes!(admin::kill_global))
        .routes(routes!(admin::dead_letters))
        .routes(routes!(admin::retry_dead_letter))
        .routes(routes!(rules::list_presets))
        .routes(routes!(
            rules::get_rules,
            rules::put_rules,
            rules::delete_rules
        ))
        .routes(routes!(rules::list_news))
        .routes(routes!(rules::add_news))
        .routes(routes!(rules::delete_news))
}
