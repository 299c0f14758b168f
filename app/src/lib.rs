//! The Leptos app: pages, their server functions, and the code shared by server and browser.
//!
//! - `domain`: types that parse input and the dashboard's rules (both sides).
//! - `model`: the data pages show (both sides).
//! - `pages`: one module per page, with the server functions it calls.
//! - `store`: all the SQL (server only).
//! - `state`: what server functions find in context (server only).

pub mod domain;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod state;
#[cfg(feature = "ssr")]
pub mod store;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path, SsrMode,
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
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
                </nav>
            </header>
            <main id="main">
                <Routes fallback=|| view! { <pages::NotFound/> }>
                    <Route path=path!("/") view=pages::grid::GridPage ssr=SsrMode::Async/>
                    <Route path=path!("/applications/:shortname") view=pages::application::ApplicationPage ssr=SsrMode::Async/>
                    <Route path=path!("/activity") view=pages::activity::ActivityPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    // Lets the browser tests (and anyone curious) know the page is interactive.
    if let Some(body) = document().body() {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
