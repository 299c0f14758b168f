//! The grid's rows, rendered once per change instead of once per request (server only).
//!
//! The grid is the page everyone keeps open, and its rows change only when a notification,
//! event, deploy or freeze happens, each of which the store already announces
//! (`Store::publish`; on PostgreSQL a NOTIFY, so every replica hears it). `GridCache` keeps
//! every application's row as HTML, re-renders only the rows that changed, and hands
//! pages one ready fragment. Each changed row also goes to the open grids as a delta
//! (`grid` events on `/api/live?grid=1`), so a change costs one render and a few hundred
//! bytes per browser, never a full grid per browser.
//!
//! The markup is written by hand, not by `view!`: it is the page's bulk (1,000 apps x 5
//! environments), so every byte counts (the budget test in `tests/api/pages.rs` holds it),
//! and every text and attribute goes through `escape`. A cell carries what a person reads:
//! version, short SHA, how long ago, who, and a status class; the status words for the
//! common cases and "not deployed" come from CSS (`style/main.css`, `.grid td`). How long
//! ago is rendered at render time and kept current in the browser from `data-t`; the
//! cache renders afresh each minute for new page loads.

use crate::domain::{DeploymentStatus, Flag};
use crate::model::{short_sha, AppSummary, Cell, Freeze, Grid};
use crate::store::{Store, StoreError};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// Escapes text and attribute values (both quoted with `"`).
pub fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Deltas travel one per line: no raw line breaks in the markup.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// One environment's cell. Succeeded is the common case and carries no class; the status
/// words come from CSS. `data-t`: when, in minutes since the epoch, for the browser's "how
/// long ago".
fn cell(
    out: &mut String,
    cell: Option<&Cell>,
    live: Option<&crate::model::LiveCell>,
    continuous: bool,
    now_ms: i64,
) {
    let Some(c) = cell else {
        // "not deployed" comes from CSS (`td:empty`).
        out.push_str(if continuous {
            "<td></td>"
        } else {
            "<td class=\"m\"></td>"
        });
        return;
    };
    let status = if c.stalled {
        Some("stall")
    } else {
        match c.status {
            DeploymentStatus::Succeeded => None,
            DeploymentStatus::Failed => Some("fail"),
            DeploymentStatus::InProgress => Some("run"),
            DeploymentStatus::Requested => Some("req"),
        }
    };
    out.push_str("<td");
    match (status, continuous) {
        (None, true) => {}
        (None, false) => out.push_str(" class=\"m\""),
        (Some(s), continuous) => {
            out.push_str(" class=\"");
            out.push_str(s);
            out.push_str(if continuous { "\"" } else { " m\"" });
        }
    }
    out.push_str(" data-t=\"");
    out.push_str(&c.created_at_ms.div_euclid(60_000).to_string());
    out.push_str("\"><b>");
    escape(&c.version, out);
    out.push_str("</b>");
    if let Some(sha) = c.sha.as_deref().filter(|s| *s != c.version) {
        out.push(' ');
        escape(short_sha(sha), out);
    }
    out.push_str(" <i>");
    out.push_str(&crate::model::ago_short(now_ms, c.created_at_ms));
    out.push_str("</i>");
    if let Some(who) = &c.deployed_by {
        out.push(' ');
        escape(who, out);
    }
    if let Some(approval) = &c.approval {
        out.push_str(" <em class=\"approval\">");
        escape(approval, out);
        out.push_str("</em>");
    }
    if let Some(soaking) = &c.soaking {
        out.push_str(" <em class=\"soak\">");
        escape(soaking, out);
        out.push_str("</em>");
    }
    if let Some(note) = &c.gate_note {
        out.push_str(" <em class=\"gate\">");
        escape(note, out);
        out.push_str("</em>");
    }
    if c.status == DeploymentStatus::Failed {
        // The failing stage is worth its bytes: it is what people act on.
        if let Some(stage) = c.failed_stage {
            out.push_str(" <strong>");
            out.push_str(stage.label());
            out.push_str(" failed</strong>");
        }
    }
    // What Argo CD says, only when it is worth reading: not healthy, or not known.
    match live {
        Some(l) if l.unknown_since_ms.is_some() => {
            out.push_str(" <s title=\"Argo CD could not be read since ");
            out.push_str(&crate::model::exact_time(
                l.unknown_since_ms.unwrap_or_default(),
            ));
            out.push_str("\">live state unknown</s>");
        }
        Some(l) if l.health != "Healthy" => {
            out.push_str(" <s>");
            escape(&l.health, out);
            out.push_str("</s>");
        }
        _ => {}
    }
    out.push_str("</td>");
}

/// What a row counts toward the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Counts {
    attention: bool,
    manual: bool,
    sync: bool,
    failed: bool,
    drift: bool,
}

impl Counts {
    fn of(app: &AppSummary) -> Self {
        let any = |pred: fn(&Flag) -> bool| app.flags.iter().any(pred);
        Self {
            attention: !app.flags.is_empty(),
            manual: any(|f| matches!(f, Flag::ManualDeployment { .. })),
            sync: any(|f| matches!(f, Flag::NotInSync { .. })),
            failed: any(|f| matches!(f, Flag::LastDeploymentFailed { .. })),
            drift: any(|f| matches!(f, Flag::Drift { .. })),
        }
    }
}

/// One application's row: the name linking to its page (the link is how the browser finds
/// the row again), one cell per environment, then its flags. The link's title carries the
/// team, and the repo when it is not named after the app, for filtering.
pub fn render_row(app: &AppSummary, frozen: bool, now_ms: i64) -> String {
    let mut out = String::with_capacity(400);
    out.push_str(if app.flags.is_empty() {
        "<tr>"
    } else {
        "<tr class=\"attention\">"
    });
    out.push_str("<th><a href=\"/applications/");
    out.push_str(&crate::domain::encode_path_segment(&app.shortname));
    out.push('"');
    let named_after = app
        .repo
        .rsplit_once('/')
        .is_some_and(|(_, name)| name == app.shortname);
    let mut title = String::new();
    if !named_after {
        title.push_str(&app.repo);
    }
    if !app.team.is_empty() {
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(&app.team);
    }
    if !title.is_empty() {
        out.push_str(" title=\"");
        escape(&title, &mut out);
        out.push('"');
    }
    out.push('>');
    escape(&app.name, &mut out);
    out.push_str("</a></th>");
    for (i, c) in app.cells.iter().enumerate() {
        let continuous = app.continuous.get(i).copied().unwrap_or(true);
        let live = app.live.get(i).and_then(Option::as_ref);
        cell(&mut out, c.as_ref(), live, continuous, now_ms);
    }
    out.push_str("<td>");
    if frozen {
        out.push_str("<span class=\"frozen\">frozen</span>");
    }
    for f in &app.flags {
        let env = match f {
            Flag::ManualDeployment { environment, .. }
            | Flag::NotInSync { environment, .. }
            | Flag::LastDeploymentFailed { environment, .. }
            | Flag::Drift { environment, .. } => environment,
        };
        let class = match f {
            Flag::ManualDeployment { .. } => "manual",
            Flag::NotInSync { .. } => "sync",
            Flag::LastDeploymentFailed { .. } => "failed",
            Flag::Drift { .. } => "drift",
        };
        out.push_str("<span class=\"");
        out.push_str(class);
        out.push_str("\">");
        if let Flag::ManualDeployment { environment, .. } = f {
            // The promotion is one click away on the app's page (the grid's rows are the
            // same for everyone; the button and its rules are per person there).
            out.push_str("<a href=\"/applications/");
            escape(&app.shortname, &mut out);
            out.push_str("#promote-");
            escape(environment, &mut out);
            out.push_str("\">");
            out.push_str(f.label());
            out.push_str(": ");
            escape(env, &mut out);
            out.push_str("</a>");
        } else {
            out.push_str(f.label());
            out.push_str(": ");
            escape(env, &mut out);
        }
        out.push_str("</span>");
    }
    out.push_str("</td></tr>");
    out
}

fn render_summary(counts: &[Counts]) -> String {
    let total = counts.len();
    let n = |f: fn(&Counts) -> bool| counts.iter().filter(|c| f(c)).count();
    let attention = n(|c| c.attention);
    if attention == 0 {
        format!("<section class=\"summary\" id=\"grid-summary\" aria-live=\"polite\"><p class=\"ok\">All {total} applications are in order.</p></section>")
    } else {
        format!(
            "<section class=\"summary\" id=\"grid-summary\" aria-live=\"polite\"><p><strong>{attention} of {total} applications need attention</strong>: {} need a manual deployment, {} not in sync, {} with a failed deployment, {} drifted from what Release recorded.</p></section>",
            n(|c| c.manual),
            n(|c| c.sync),
            n(|c| c.failed),
            n(|c| c.drift)
        )
    }
}

/// The summary line of these rows.
fn summary_of(rows: &[Arc<Row>]) -> String {
    let counts: Vec<Counts> = rows.iter().map(|r| r.counts).collect();
    render_summary(&counts)
}

fn render_freezes(freezes: &[Freeze], now_ms: i64) -> String {
    let mut out = String::new();
    for f in freezes {
        out.push_str("<p class=\"banner frozen\" role=\"status\"><strong>");
        escape(&f.headline(), &mut out);
        out.push_str("</strong> by ");
        escape(&f.frozen_by, &mut out);
        out.push(' ');
        out.push_str(&crate::model::ago(now_ms, f.created_at_ms));
        out.push_str(": ");
        escape(&f.reason, &mut out);
        out.push_str("</p>");
    }
    out
}

/// The table's head. `data-etag`: the render it belongs to, so the browser can ask
/// `/api/grid.html` whether anything changed since (a 304 when not).
fn render_head(environments: &[String], etag: &str) -> String {
    let mut out = String::from("<div class=\"table-wrap\"><table class=\"grid\" data-etag=\"");
    escape(etag, &mut out);
    out.push_str(
        "\"><caption class=\"visually-hidden\">Deployed versions of each application in each environment</caption><thead><tr><th scope=\"col\">Application</th>",
    );
    for e in environments {
        out.push_str("<th scope=\"col\">");
        escape(e, &mut out);
        out.push_str("</th>");
    }
    out.push_str("<th scope=\"col\">Needs attention</th></tr></thead><tbody>");
    out
}

const TAIL: &str = "</tbody></table></div>";

/// One rendered row and what the cache needs to know about it.
#[derive(Debug, Clone)]
struct Row {
    /// The grid's order: by name, then by id.
    order: (String, i64),
    shortname: String,
    /// Hash of what the row shows, "how long ago" aside: a re-render that changes only
    /// the time is not a change worth sending.
    key: u64,
    counts: Counts,
    /// Lower-case name, shortname, repo and team, for the server-side filter.
    haystack: String,
    html: String,
}

fn row(app: &AppSummary, id: i64, frozen: bool, now_ms: i64) -> Row {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{app:?}").hash(&mut h);
    frozen.hash(&mut h);
    Row {
        order: (app.name.clone(), id),
        shortname: app.shortname.clone(),
        key: h.finish(),
        counts: Counts::of(app),
        haystack: format!("{} {} {} {}", app.name, app.shortname, app.repo, app.team)
            .to_lowercase(),
        html: render_row(app, frozen, now_ms),
    }
}

/// What a page is given: the whole fragment, ready to send, and the rows for filtering.
#[derive(Debug)]
pub struct Snapshot {
    generation: u64,
    /// Banners, summary and table: what goes inside `<div id="grid">`.
    pub fragment: Arc<str>,
    /// Changes with every render (a strong validator for `/api/grid.html`).
    pub etag: String,
    banners: String,
    head: String,
    rows: Vec<Arc<Row>>,
}

impl Snapshot {
    /// The fragment with the rows a filter drops marked `hidden` (the filter form without
    /// JavaScript; the browser can show them again without asking): `query` matches
    /// name, shortname, repo or team; `attention_only` keeps flagged apps.
    pub fn filtered(&self, query: &str, attention_only: bool) -> String {
        let q = query.trim().to_lowercase();
        if q.is_empty() && !attention_only {
            return self.fragment.to_string();
        }
        let mut out = self.banners.clone();
        out.push_str(&summary_of(&self.rows));
        out.push_str(&self.head);
        for r in self.rows.iter() {
            let keep = (!attention_only || r.counts.attention)
                && (q.is_empty() || r.haystack.contains(&q));
            match r.html.strip_prefix("<tr") {
                Some(rest) if !keep => {
                    out.push_str("<tr hidden");
                    out.push_str(rest);
                }
                _ => out.push_str(&r.html),
            }
        }
        out.push_str(TAIL);
        out
    }

    pub fn rows(&self) -> usize {
        self.rows.len()
    }
}

struct Rendered {
    environments: Vec<String>,
    freezes: Vec<Freeze>,
    frozen: HashSet<String>,
    rows: Vec<Arc<Row>>,
    minute: i64,
}

struct Inner {
    changes: broadcast::Receiver<String>,
    /// Announced and not yet rendered: these apps, or everything.
    pending: HashSet<String>,
    pending_all: bool,
    rendered: Option<Rendered>,
    generation: u64,
}

/// The rendered grid, kept current from the store's change announcements.
pub struct GridCache {
    store: Store,
    /// The soak times, for "soaking 12/30 min" on the cells that wait.
    gates: Arc<crate::domain::gates::GateConfig>,
    /// The demo's simulated pipeline: the fragment says so first.
    simulated: bool,
    inner: tokio::sync::Mutex<Inner>,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    deltas: broadcast::Sender<Arc<str>>,
    boot: u64,
}

fn minute(ms: i64) -> i64 {
    ms.div_euclid(60_000)
}

impl GridCache {
    /// Renders the grid once, then keeps it current: a background task applies changes
    /// as they are announced (so open grids get their deltas within milliseconds), and
    /// renders afresh each minute for "how long ago".
    pub async fn start(
        store: Store,
        simulated: bool,
        gates: Arc<crate::domain::gates::GateConfig>,
    ) -> Result<Arc<Self>, StoreError> {
        let cache = Arc::new(Self {
            inner: tokio::sync::Mutex::new(Inner {
                changes: store.subscribe(),
                pending: HashSet::new(),
                pending_all: true,
                rendered: None,
                generation: 0,
            }),
            store: store.clone(),
            gates,
            simulated,
            snapshot: RwLock::new(None),
            deltas: broadcast::channel(1024).0,
            boot: rand_boot(),
        });
        cache.current().await?;
        let weak = Arc::downgrade(&cache);
        let mut wake = store.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
            loop {
                tokio::select! {
                    r = wake.recv() => {
                        if matches!(r, Err(broadcast::error::RecvError::Closed)) {
                            return;
                        }
                        // Let a burst gather: one render for many changes.
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        while wake.try_recv().is_ok() {}
                    }
                    _ = tick.tick() => {}
                }
                let Some(cache) = weak.upgrade() else { return };
                // Nobody has a grid open: the next page load applies the changes (a busy
                // pipeline with nobody watching costs no renders at all).
                if cache.deltas.receiver_count() == 0 {
                    continue;
                }
                let refreshed = cache.refresh().await.map(drop);
                if let Err(e) = refreshed {
                    tracing::warn!(error = %e, "could not render the grid; trying again on the next change");
                }
            }
        });
        Ok(cache)
    }

    /// Open grids' deltas: `SHORTNAME\nSUMMARY\nROW` (ROW empty when the app is gone), or
    /// `*` (reload the fragment).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.deltas.subscribe()
    }

    /// The last rendered snapshot, without waiting (the page's server-side render, after
    /// `current` was awaited for the request).
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.read().ok().and_then(|s| s.clone())
    }

    /// The grid with every change announced so far applied: on SQLite exactly (the
    /// announcement is in the channel before the write's response is sent); on PostgreSQL
    /// as soon as the NOTIFY arrives.
    pub async fn current(&self) -> Result<Arc<Snapshot>, StoreError> {
        let inner = self.refresh().await?;
        if let Some(s) = self.snapshot().filter(|s| s.generation == inner.generation) {
            return Ok(s);
        }
        let now = crate::store::now_ms();
        let rendered = inner.rendered.as_ref().expect("refresh renders");
        let snapshot = Arc::new(self.assemble(rendered, inner.generation, now));
        if let Ok(mut s) = self.snapshot.write() {
            *s = Some(snapshot.clone());
        }
        Ok(snapshot)
    }

    /// Applies the changes announced so far (sending each changed row to open grids),
    /// without assembling the page's fragment: the background task's work, cheap for a
    /// few rows however many applications there are.
    async fn refresh(&self) -> Result<tokio::sync::MutexGuard<'_, Inner>, StoreError> {
        let mut inner = self.inner.lock().await;
        // Drained into `inner`, not a local: a caller that gives up half way (a timeout)
        // leaves them for the next one.
        if inner.rendered.is_none() {
            inner.pending_all = true;
        }
        loop {
            match inner.changes.try_recv() {
                Ok(what) if what == "*" => inner.pending_all = true,
                Ok(what) => {
                    inner.pending.insert(what);
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => inner.pending_all = true,
                Err(_) => break,
            }
        }
        let now = crate::store::now_ms();
        let stale = inner
            .rendered
            .as_ref()
            .is_some_and(|r| r.minute != minute(now));
        let everything = inner.pending_all;
        if !everything && inner.pending.is_empty() && !stale {
            return Ok(inner);
        }
        if everything || stale {
            let grid = with_waits(&self.store, &self.gates, self.store.grid().await?).await?;
            let old = inner.rendered.take();
            let rendered = self.render_all(grid, now);
            if everything {
                if old.is_some() {
                    self.deltas.send(Arc::from("*")).ok();
                }
            } else if let Some(old) = &old {
                // A minute's re-render: send only rows whose content changed (a deploy
                // becoming stalled), not the new "how long ago".
                self.send_changed(old, &rendered);
            }
            inner.rendered = Some(rendered);
            inner.pending.clear();
            inner.pending_all = false;
        } else {
            let names: Vec<String> = inner.pending.iter().cloned().collect();
            let grid =
                with_waits(&self.store, &self.gates, self.store.grid_for(&names).await?).await?;
            let rendered = inner.rendered.as_mut().expect("rendered above");
            self.apply(rendered, grid, &names, now);
            inner.pending.clear();
        }
        inner.generation += 1;
        Ok(inner)
    }

    fn render_all(&self, grid: Grid, now: i64) -> Rendered {
        let frozen: HashSet<String> = grid
            .freezes
            .iter()
            .filter_map(|f| f.application.clone())
            .collect();
        let rows = grid
            .apps
            .iter()
            .zip(&grid.ids)
            .map(|(a, id)| Arc::new(row(a, *id, frozen.contains(&a.shortname), now)))
            .collect();
        Rendered {
            environments: grid.environments,
            freezes: grid.freezes,
            frozen,
            rows,
            minute: minute(now),
        }
    }

    /// Replaces the rows of `names` with their new renders and sends each changed one.
    fn apply(&self, r: &mut Rendered, grid: Grid, names: &[String], now: i64) {
        let mut fresh: Vec<Option<Arc<Row>>> = grid
            .apps
            .iter()
            .zip(&grid.ids)
            .map(|(a, id)| Some(Arc::new(row(a, *id, r.frozen.contains(&a.shortname), now))))
            .collect();
        let mut changed: Vec<(String, Option<usize>)> = Vec::new();
        for name in names {
            let old = r.rows.iter().position(|x| &x.shortname == name);
            let new = fresh
                .iter()
                .position(|x| x.as_ref().is_some_and(|x| &x.shortname == name));
            match (old, new.and_then(|j| fresh[j].take())) {
                (Some(i), Some(row)) => {
                    if r.rows[i].key != row.key || r.rows[i].order != row.order {
                        r.rows.remove(i);
                        let at = r.rows.partition_point(|x| x.order < row.order);
                        r.rows.insert(at, row);
                        changed.push((name.clone(), Some(at)));
                    }
                }
                (None, Some(row)) => {
                    let at = r.rows.partition_point(|x| x.order < row.order);
                    r.rows.insert(at, row);
                    changed.push((name.clone(), Some(at)));
                }
                (Some(i), None) => {
                    r.rows.remove(i);
                    changed.push((name.clone(), None));
                }
                (None, None) => {}
            }
        }
        if changed.is_empty() {
            return;
        }
        let summary = summary_of(&r.rows);
        for (name, _) in changed {
            let html = r
                .rows
                .iter()
                .find(|x| x.shortname == name)
                .map(|x| x.html.as_str())
                .unwrap_or("");
            self.send_delta(&name, &summary, html);
        }
    }

    /// One row's delta to every open grid. Nobody listening is not a failure: the next
    /// page load renders the current rows anyway.
    fn send_delta(&self, name: &str, summary: &str, html: &str) {
        self.deltas
            .send(Arc::from(format!("{name}\n{summary}\n{html}")))
            .ok();
    }

    fn send_changed(&self, old: &Rendered, new: &Rendered) {
        let summary = summary_of(&new.rows);
        let before: std::collections::HashMap<&str, u64> = old
            .rows
            .iter()
            .map(|o| (o.shortname.as_str(), o.key))
            .collect();
        for row in &new.rows {
            match before.get(row.shortname.as_str()) {
                Some(key) if *key == row.key => {}
                _ => self.send_delta(&row.shortname, &summary, &row.html),
            }
        }
    }

    fn assemble(&self, r: &Rendered, generation: u64, now: i64) -> Snapshot {
        let mut banners = String::new();
        if self.simulated {
            banners.push_str("<p class=\"banner demo\" role=\"note\">Demo mode: deployments started here are simulated; nothing is deployed anywhere.</p>");
        }
        // Site-wide freezes as banners; a frozen app shows it in its own row.
        let site: Vec<Freeze> = r
            .freezes
            .iter()
            .filter(|f| f.application.is_none())
            .cloned()
            .collect();
        banners.push_str(&render_freezes(&site, now));
        let etag = format!("\"g{:x}-{generation}\"", self.boot);
        let head = render_head(&r.environments, &etag);
        let size: usize = r.rows.iter().map(|x| x.html.len()).sum();
        let mut fragment = String::with_capacity(banners.len() + head.len() + size + 512);
        fragment.push_str(&banners);
        fragment.push_str(&summary_of(&r.rows));
        fragment.push_str(&head);
        for x in &r.rows {
            fragment.push_str(&x.html);
        }
        fragment.push_str(TAIL);
        Snapshot {
            generation,
            fragment: Arc::from(fragment),
            etag,
            banners,
            head,
            rows: r.rows.clone(),
        }
    }
}

/// Distinguishes this process's ETags from another's (a restart, another replica).
fn rand_boot() -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::time::SystemTime::now().hash(&mut h);
    std::process::id().hash(&mut h);
    h.finish()
}

/// The grid with what its cells wait for: "waiting for approval in production: 12 min"
/// on a deployment whose run waits for a reviewer (one query), and "soaking 12/30 min" on
/// each cell whose version has not run there long enough to go on to the next
/// environment (only where a soak time is set: a query per such cell).
async fn with_waits(
    store: &crate::store::Store,
    gates: &crate::domain::gates::GateConfig,
    mut grid: crate::model::Grid,
) -> crate::store::Result<crate::model::Grid> {
    let envs = store.environments().as_slice().to_vec();
    let now = crate::store::now_ms();
    // Runs waiting for a reviewer, on the cell of their deployment.
    let waiting = store.waiting_approvals().await?;
    if !waiting.is_empty() {
        for cell in grid
            .apps
            .iter_mut()
            .flat_map(|a| a.cells.iter_mut())
            .flatten()
        {
            if let Some(w) = waiting
                .iter()
                .find(|w| w.deployment_id == cell.deployment_id)
            {
                cell.approval = Some(w.label(now));
            }
        }
    }
    for (app, id) in grid.apps.iter_mut().zip(grid.ids.iter()) {
        for i in 1..envs.len() {
            let minutes = gates.soak_minutes(&app.shortname, envs[i].as_str());
            if minutes == 0 {
                continue;
            }
            let Some(Some(cell)) = app.cells.get_mut(i - 1) else {
                continue;
            };
            let before = envs[i - 1].as_str();
            let argocd = gates.argocd_environments.iter().any(|e| e == before);
            let stints = store
                .soak_stints(*id, before, &cell.version, argocd)
                .await?;
            let s = crate::domain::gates::soak(&cell.version, before, minutes, &stints, now);
            if s.hold.is_some() {
                cell.soaking = Some(format!(
                    "soaking {}/{} min",
                    s.current_minutes, s.required_minutes
                ));
            }
        }
    }
    Ok(grid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Stage;

    fn app(name: &str) -> AppSummary {
        AppSummary {
            name: name.into(),
            shortname: "x".into(),
            repo: "o/x".into(),
            team: "t".into(),
            cells: vec![
                Some(Cell {
                    deployment_id: 1,
                    version: "v1".into(),
                    sha: Some("0123456789abcdef".into()),
                    deployed_by: Some("<img src=x onerror=alert(1)>".into()),
                    trigger: "continuous".into(),
                    status: DeploymentStatus::Failed,
                    failed_stage: Some(Stage::SmokeTests),
                    created_at_ms: 0,
                    stalled: false,
                    gate_note: None,
                    soaking: None,
                    approval: None,
                }),
                None,
            ],
            continuous: vec![true, false],
            flags: vec![],
            release_status: String::new(),
            live: vec![],
        }
    }

    #[test]
    fn rows_escape_everything_a_caller_sent() {
        let html = render_row(&app("a\"b<script>\n"), false, 120_000);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains('\n'), "{html}");
        assert!(html.contains("a&quot;b&lt;script&gt;&#10;"), "{html}");
        assert!(html.contains("<b>v1</b> 0123456 <i>2m ago</i>"), "{html}");
        assert!(
            html.contains("<strong>smoke tests failed</strong>"),
            "{html}"
        );
        assert!(html.contains("<td class=\"m\"></td>"), "{html}");
        let mut hostile = app("n");
        hostile.team = "\"><script>x</script>".into();
        hostile.repo = "o/<b>".into();
        let html = render_row(&hostile, true, 0);
        assert!(
            html.contains("title=\"o/&lt;b&gt; &quot;&gt;&lt;script&gt;x&lt;/script&gt;\""),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"frozen\">frozen</span>"),
            "{html}"
        );
    }
}
