//! `/`: every application, a column per environment, and what needs attention.

use crate::model::Grid;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[server(endpoint = "grid")]
pub async fn get_grid() -> Result<Grid, crate::error::AppError> {
    crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let mut grid = state.store.grid().await?;
    grid.simulated = state.simulator.is_some();
    Ok(grid)
}

#[component]
pub fn GridPage() -> impl IntoView {
    // The filter lives in the query string, so the form works with JavaScript off (the
    // server marks the rows it hides); after hydration typing filters at once.
    let query = use_query_map();
    let q0 = query.read_untracked().get("q").unwrap_or_default();
    let attention0 = query
        .read_untracked()
        .get("attention")
        .is_some_and(|v| v == "1");
    let filter = RwSignal::new(q0.clone());
    let attention_only = RwSignal::new(attention0);

    // The rows come ready-made from the grid cache (`crate::grid_cache`), not through a resource:
    // no second copy of the grid as hydration data, and no render per request. After
    // hydration the browser keeps the server's markup; on a client-side visit it fetches
    // `/api/grid.html` (ETag-validated).
    #[cfg(feature = "ssr")]
    let html = crate::state::app_state()
        .ok()
        .and_then(|s| s.grid.snapshot())
        .map(|s| s.filtered(&q0, attention0))
        .unwrap_or_else(|| {
            "<p class=\"error\" role=\"alert\">The applications could not be read; try again in a moment.</p>".to_string()
        });
    #[cfg(not(feature = "ssr"))]
    let html = {
        let _ = (q0, attention0);
        String::new()
    };
    let grid_div = NodeRef::<leptos::html::Div>::new();
    #[cfg(feature = "hydrate")]
    client::start(filter, attention_only, grid_div);

    view! {
        <h1 class="visually-hidden">"Applications"</h1>
        <form class="filters" method="get" action="/" role="search" on:submit=|ev| ev.prevent_default()>
            <label for="filter">"Filter applications"</label>
            <input
                id="filter"
                name="q"
                type="search"
                placeholder="Name, repo or team — press / to focus"
                autocomplete="off"
                value=filter.get_untracked()
                prop:value=move || filter.get()
                on:input=move |ev| filter.set(event_target_value(&ev))
            />
            <label class="check">
                <input
                    type="checkbox"
                    name="attention"
                    value="1"
                    checked=attention_only.get_untracked()
                    prop:checked=move || attention_only.get()
                    on:change=move |ev| attention_only.set(event_target_checked(&ev))
                />
                " Needs attention only"
            </label>
            <noscript><button type="submit">"Filter"</button></noscript>
        </form>
        <div id="grid" node_ref=grid_div inner_html=html></div>
    }
}

/// The grid in the browser: filtering, "how long ago", and live deltas, all on the
/// server's markup (the rows are not Leptos views; see `crate::grid_cache`).
#[cfg(feature = "hydrate")]
mod client {
    use leptos::prelude::*;
    use wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::{Element, HtmlElement};

    fn grid() -> Option<Element> {
        document().get_element_by_id("grid")
    }

    /// Shows the rows the filter keeps: the text matches the app's name, shortname,
    /// repo or team (the link's text, its address and its title).
    fn apply_filter(filter: &str, attention_only: bool) {
        let Some(grid) = grid() else { return };
        let q = filter.trim().to_lowercase();
        let Ok(rows) = grid.query_selector_all("tbody tr") else {
            return;
        };
        for i in 0..rows.length() {
            let Some(row) = rows.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
                continue;
            };
            let visible = (!attention_only || row.class_list().contains("attention"))
                && (q.is_empty() || {
                    let link = row.query_selector("th a").ok().flatten();
                    let text = link
                        .as_ref()
                        .and_then(|a| a.text_content())
                        .unwrap_or_default();
                    let href = link
                        .as_ref()
                        .and_then(|a| a.get_attribute("href"))
                        .unwrap_or_default();
                    let title = link
                        .and_then(|a| a.get_attribute("title"))
                        .unwrap_or_default();
                    format!("{href} {text} {title}").to_lowercase().contains(&q)
                });
            // Only touch rows whose state changes: typing must stay fast at 1,000 rows.
            if row.has_attribute("hidden") == visible {
                row.toggle_attribute_with_force("hidden", !visible).ok();
            }
        }
    }

    /// Rewrites every "how long ago" from the cell's `data-t` (minutes since the epoch).
    fn refresh_ages() {
        let Some(grid) = grid() else { return };
        let now = js_sys::Date::now() as i64;
        let Ok(cells) = grid.query_selector_all("td[data-t] > i") else {
            return;
        };
        for i in 0..cells.length() {
            let Some(el) = cells.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
                continue;
            };
            let Some(t) = el
                .parent_element()
                .and_then(|td| td.get_attribute("data-t"))
                .and_then(|t| t.parse::<i64>().ok())
            else {
                continue;
            };
            let text = crate::model::ago_short(now, t * 60_000);
            if el.text_content().as_deref() != Some(text.as_str()) {
                el.set_text_content(Some(&text));
            }
        }
    }

    thread_local! {
        /// A reload of the fragment is under way.
        static RELOADING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        /// A delta or another reload came meanwhile: ask again once it is done.
        static MISSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// The render the rows on the page come from (`data-etag` on the table).
    fn current_etag() -> Option<String> {
        grid()?
            .query_selector("table.grid")
            .ok()??
            .get_attribute("data-etag")
    }

    /// The fragment if it changed since `etag` (`None`: unchanged, or it could not be had).
    async fn fetch_fragment(etag: Option<String>) -> Option<String> {
        let window = web_sys::window()?;
        let init = web_sys::RequestInit::new();
        if let Some(tag) = etag {
            let headers = web_sys::Headers::new().ok()?;
            headers.set("If-None-Match", &tag).ok()?;
            init.set_headers(&headers);
        }
        let resp = wasm_bindgen_futures::JsFuture::from(
            window.fetch_with_str_and_init("/api/grid.html", &init),
        )
        .await
        .ok()?
        .dyn_into::<web_sys::Response>()
        .ok()?;
        if resp.status() != 200 {
            return None;
        }
        wasm_bindgen_futures::JsFuture::from(resp.text().ok()?)
            .await
            .ok()?
            .as_string()
    }

    /// Brings the rows up to date with the server: a client-side visit (no rows yet), a
    /// (re)connected live stream (deltas sent before it were not seen here), or a `*`
    /// change. Asks with the page's render as `If-None-Match`, so an unchanged grid costs a
    /// 304. Deltas that arrive during a reload are not applied to rows about to be
    /// replaced: they make the reload ask once more when it is done.
    fn reload(filter: RwSignal<String>, attention_only: RwSignal<bool>) {
        if RELOADING.get() {
            MISSED.set(true);
            return;
        }
        RELOADING.set(true);
        leptos::task::spawn_local(async move {
            if let (Some(text), Some(grid)) = (fetch_fragment(current_etag()).await, grid()) {
                grid.set_inner_html(&text);
                refresh_ages();
                apply_filter(&filter.get_untracked(), attention_only.get_untracked());
            }
            RELOADING.set(false);
            if MISSED.replace(false) {
                reload(filter, attention_only);
            }
        });
    }

    /// The row of an application: the one whose name links to its page.
    fn row_of(shortname: &str) -> Option<Element> {
        let href = format!(
            "/applications/{}",
            crate::domain::encode_path_segment(shortname)
        );
        let rows = grid()?.query_selector_all("tbody tr > th > a").ok()?;
        (0..rows.length())
            .filter_map(|i| rows.item(i)?.dyn_into::<Element>().ok())
            .find(|a| a.get_attribute("href").as_deref() == Some(href.as_str()))
            .and_then(|a| a.closest("tr").ok().flatten())
    }

    /// One delta: `SHORTNAME\nSUMMARY\nROW`, or `*`.
    fn apply_delta(data: &str, filter: RwSignal<String>, attention_only: RwSignal<bool>) {
        if RELOADING.get() {
            MISSED.set(true);
            return;
        }
        let mut parts = data.splitn(3, '\n');
        let (Some(name), Some(summary), Some(row)) = (parts.next(), parts.next(), parts.next())
        else {
            reload(filter, attention_only);
            return;
        };
        let existing = row_of(name);
        match existing {
            Some(el) if row.is_empty() => el.remove(),
            Some(el) => el.set_outer_html(row),
            // A new application: its place in the order is the server's to say.
            None => {
                reload(filter, attention_only);
                return;
            }
        }
        if let Some(s) = document().get_element_by_id("grid-summary") {
            s.set_outer_html(summary);
        }
        refresh_ages();
        apply_filter(&filter.get_untracked(), attention_only.get_untracked());
    }

    pub fn start(
        filter: RwSignal<String>,
        attention_only: RwSignal<bool>,
        grid_div: NodeRef<leptos::html::Div>,
    ) {
        // "/" focuses the filter box, unless the person is typing somewhere already.
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.key() != "/" {
                return;
            }
            let typing = ev
                .target()
                .and_then(|t| t.dyn_into::<HtmlElement>().ok())
                .is_some_and(|el| {
                    matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                });
            if typing {
                return;
            }
            if let Some(input) = document().get_element_by_id("filter") {
                if let Ok(input) = input.dyn_into::<HtmlElement>() {
                    ev.prevent_default();
                    input.focus().ok();
                }
            }
        });
        on_cleanup(move || handle.remove());

        Effect::new(move |_| {
            let (f, a) = (filter.get(), attention_only.get());
            apply_filter(&f, a);
        });

        // A client-side visit renders an empty `#grid`: fetch the rows once it is mounted.
        Effect::new(move |_| {
            if grid_div.get().is_some_and(|g| g.child_element_count() == 0) {
                reload(filter, attention_only);
            }
        });

        if let Ok(timer) =
            set_interval_with_handle(refresh_ages, std::time::Duration::from_secs(30))
        {
            on_cleanup(move || timer.clear());
        }

        let Ok(source) = web_sys::EventSource::new("/api/live?grid=1") else {
            return;
        };
        let on_delta =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                apply_delta(
                    &e.data().as_string().unwrap_or_default(),
                    filter,
                    attention_only,
                );
            });
        source
            .add_event_listener_with_callback("grid", on_delta.as_ref().unchecked_ref())
            .ok();
        // Deltas sent before the stream opened (between the page's render and now, or
        // while a dropped connection was down) were not seen here: ask whether the render
        // changed (a 304 when it did not).
        let on_open = Closure::<dyn FnMut()>::new(move || {
            if grid().is_some_and(|g| g.child_element_count() > 0) {
                reload(filter, attention_only);
            }
        });
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        let held = send_wrapper::SendWrapper::new((source, on_delta, on_open));
        on_cleanup(move || held.take().0.close());
    }
}
