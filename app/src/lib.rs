//! The Leptos app: pages, their server functions, and the code shared by server and browser.
//!
//! - `domain`: types that parse input and the dashboard's rules (both sides).
//! - `model`: the data pages show (both sides).
//! - `actions`: what people do (deploy, promote, roll back, trains, resubmit, freezes),
//!   each through one durable path: intent, effect in a task of its own, outcome.
//! - `pages`: one module per page, with the server functions it calls.
//! - `store`: all the SQL (server only).
//! - `grid_cache`: the grid's rows, rendered once per change and sent to open grids
//!   (server only).
//! - `state`: what server functions find in context (server only).

/// Declares modules that exist on the server only (feature `ssr`): the browser's build
/// never sees SQL, GitHub's clients or the server's state.
macro_rules! server_only {
    ($($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "ssr")]
            pub mod $name;
        )*
    };
}

pub mod actions;
pub mod auth;
pub mod changes;
pub mod domain;
pub mod error;
pub mod model;
pub mod pages;
server_only!(crypto, grid_cache, pipeline, simulator, state, store);

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path, Lazy, SsrMode,
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <Hydration options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Loads the wasm and hydrates: one module script carrying the CSP nonce (Leptos's own
/// `HydrationScripts` also emits `modulepreload` links without a nonce, which a CSP
/// without `'self'` refuses). What that script imports is trusted through
/// `'strict-dynamic'`.
#[component]
fn Hydration(options: LeptosOptions) -> impl IntoView {
    let pkg = format!("/{}", options.site_pkg_dir);
    let name = options.output_name.to_string();
    // cargo-leptos names the wasm after the output; a plain `cargo build` adds `_bg`.
    let wasm = if option_env!("LEPTOS_OUTPUT_NAME").is_some() {
        name.clone()
    } else {
        format!("{name}_bg")
    };
    let nonce = leptos::nonce::use_nonce();
    let script = format!(
        "import('{pkg}/{name}.js').then(m => m.default({{module_or_path: '{pkg}/{wasm}.wasm'}}).then(() => m.hydrate()));"
    );
    view! { <script type="module" nonce=nonce>{script}</script> }
}

/// The pages' Content-Security-Policy: only scripts carrying this response's nonce run, and
/// what they load (`'strict-dynamic'`: the app's JS and wasm); no `'self'`, so a file
/// someone managed to place on this origin cannot run as script. Styles and images from
/// this origin; no framing.
#[cfg(feature = "ssr")]
fn set_content_security_policy() {
    use leptos::nonce::use_nonce;
    let Some(resp) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    // Without a nonce no script runs at all: the page still renders (SSR), unhydrated.
    let script = match use_nonce() {
        Some(nonce) => format!("'nonce-{nonce}' 'strict-dynamic'"),
        None => "'none'".to_string(),
    };
    let csp = format!(
        "default-src 'self'; script-src {script} 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: https:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&csp) {
        resp.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, v);
    }
}

/// Who is signed in: nothing for the browser to decide, the server says.
#[server(endpoint = "me")]
pub async fn get_me() -> Result<Option<auth::CurrentUser>, error::AppError> {
    Ok(auth::current_user())
}

#[component]
fn UserMenu() -> impl IntoView {
    let me = Resource::new(|| (), |_| get_me());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                me.await.ok().flatten().map(|u| {
                    let admin = u.roles.admin;
                    let role = u.role_label();
                    view! {
                        {admin.then(|| view! { <A href="/admin/users">"Users"</A> })}
                        <div class="user-menu">
                            {u.avatar_url.clone().map(|src| view! { <img class="avatar" src=src alt="" width="24" height="24"/> })}
                            <span class="login">{u.login.clone()}</span>
                            <span class="role">{role}</span>
                            <form method="post" action="/auth/sign-out">
                                <button type="submit" class="link-button">"Sign out"</button>
                            </form>
                        </div>
                    }
                })
            })}
        </Suspense>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/release.css"/>
        <Title text="Release"/>
        <Router>
            <header class="site-header">
                <a class="brand" href="/">"Release"</a>
                <nav aria-label="Main">
                    <A href="/" exact=true>"Applications"</A>
                    <A href="/activity">"Activity"</A>
                    <A href="/train">"Release train"</A>
                    <A href="/stats">"Stats"</A>
                    <A href="/audit">"Audit log"</A>
                    <UserMenu/>
                </nav>
            </header>
            <main id="main">
                <Routes fallback=|| view! { <pages::NotFound/> }>
                    <Route path=path!("/") view=pages::grid::GridPage ssr=SsrMode::Async/>
                    <Route path=path!("/applications/:shortname") view={Lazy::<routes::Application>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/activity") view={Lazy::<routes::Activity>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/admin/users") view={Lazy::<routes::Users>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/audit") view={Lazy::<routes::Audit>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/train") view={Lazy::<routes::Train>::new()} ssr=SsrMode::Async/>
                    <Route path=path!("/stats") view={Lazy::<routes::Stats>::new()} ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

/// Every page but the grid is a lazy route: its code is a separate wasm chunk (split by
/// `wasm-split-cli` in `.ci/build`), fetched when the page is first shown or, for a page
/// loaded directly, before it hydrates. The grid, the page everyone opens first, carries
/// only its own code.
mod routes {
    use leptos::prelude::*;
    use leptos_router::{lazy_route, LazyRoute};

    /// A lazy route that shows one page component.
    macro_rules! lazy_page {
        ($route:ident, $page:ident) => {
            pub struct $route;
            #[lazy_route]
            impl LazyRoute for $route {
                fn data() -> Self {
                    $route
                }
                fn view(_this: Self) -> AnyView {
                    view! { <$page/> }.into_any()
                }
            }
        };
    }

    use crate::pages::{
        activity::ActivityPage, admin::UsersPage, application::ApplicationPage, audit::AuditPage,
        promote::TrainPage, stats::StatsPage,
    };
    lazy_page!(Application, ApplicationPage);
    lazy_page!(Activity, ActivityPage);
    lazy_page!(Users, UsersPage);
    lazy_page!(Train, TrainPage);
    lazy_page!(Stats, StatsPage);
    lazy_page!(Audit, AuditPage);
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Lazy routes: hydration waits for the page's chunk, so it is asynchronous (what
    // `leptos::mount::hydrate_lazy` does, plus a mark when it is done).
    _ = any_spawner::Executor::init_wasm_bindgen();
    leptos::task::spawn_local(async {
        let Some(body) = document().body() else {
            return;
        };
        let owner = leptos::mount::hydrate_from_async(body.clone(), App).await;
        owner.forget();
        // Lets the browser tests (and anyone curious) know the page is interactive.
        body.set_attribute("data-hydrated", "true").ok();
    });
}
