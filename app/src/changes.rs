//! Live pages: in the browser, an EventSource on `/api/live` calls back on every change
//! the server announces, and pages refetch what they show. On the server this does
//! nothing: the first render is always fresh.

/// Calls `f` whenever the server says something changed. `only` limits it to changes of
/// one application (changes to the whole site, `*`, always count).
pub fn on_change(only: Option<String>, f: impl Fn() + 'static) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::prelude::on_cleanup;
        use wasm_bindgen::{closure::Closure, JsCast};
        let Ok(source) = web_sys::EventSource::new("/api/live") else {
            return;
        };
        let callback =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                let what = e.data().as_string().unwrap_or_default();
                if only.as_deref().is_none_or(|o| o == what || what == "*") {
                    f();
                }
            });
        let _ =
            source.add_event_listener_with_callback("change", callback.as_ref().unchecked_ref());
        let held = send_wrapper::SendWrapper::new((source, callback));
        on_cleanup(move || held.take().0.close());
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (only, f);
    }
}
