//! `/stats`: delivery metrics, the DORA four, overall or for one application. Charts are
//! SVG drawn on the server (they read the same with JavaScript off), each beside a table
//! with its numbers; the CSV download is `/stats.csv` with the same query.

use super::Loaded;
use crate::domain::stats::{human_duration, Spread, StatsReport, Week};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[server(endpoint = "stats")]
pub async fn get_stats(
    from: Option<String>,
    to: Option<String>,
    application: Option<String>,
    environment: Option<String>,
) -> Result<StatsReport, crate::error::AppError> {
    use crate::error::AppError;
    crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let today = crate::store::now_ms().div_euclid(crate::domain::stats::DAY_MS);
    let q = crate::domain::stats::StatsQuery::parse(
        from.as_deref(),
        to.as_deref(),
        application.as_deref(),
        environment.as_deref(),
        state.store.environments(),
        today,
    )
    .map_err(|e| AppError::new(422, e.to_string()))?;
    state.store.stats_report(&q).await.map_err(|e| match e {
        crate::store::StoreError::NotFound(m) => AppError::new(404, m),
        other => AppError::store(other),
    })
}

#[component]
pub fn StatsPage() -> impl IntoView {
    let query = use_query_map();
    let params = move || {
        let q = query.read();
        (
            q.get("from"),
            q.get("to"),
            q.get("application"),
            q.get("environment"),
        )
    };
    let report = Resource::new(params, |(f, t, a, e)| get_stats(f, t, a, e));
    let value = move |k: &'static str| move || query.read().get(k).unwrap_or_default();
    let csv = move || {
        let q = query.read();
        let pairs: Vec<String> = ["from", "to", "application", "environment"]
            .iter()
            .filter_map(|k| {
                q.get(k)
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("{k}={}", crate::domain::encode_path_segment(&v)))
            })
            .collect();
        if pairs.is_empty() {
            "/stats.csv".to_string()
        } else {
            format!("/stats.csv?{}", pairs.join("&"))
        }
    };
    view! {
        <Title text="Stats · Release"/>
        <h1>"Delivery stats"</h1>
        <form method="get" action="/stats" class="filters">
            <label>"From " <input type="date" name="from" value=value("from")/></label>
            <label>"To " <input type="date" name="to" value=value("to")/></label>
            <label>"Application " <input name="application" value=value("application") placeholder="all"/></label>
            <label>"Environment " <input name="environment" value=value("environment") placeholder="all"/></label>
            <button type="submit">"Show"</button>
            <a class="button-link" href=csv download="">"Download CSV"</a>
        </form>
        <Loaded resource=report show=|r| view! { <Report r/> }.into_any()/>
    }
}

fn spread_text(s: &Spread) -> String {
    match (s.median_seconds, s.p90_seconds) {
        (Some(m), Some(p)) => format!("{} (p90 {})", human_duration(m), human_duration(p)),
        _ => "none yet".into(),
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "none yet".into()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

#[component]
fn Report(r: StatsReport) -> impl IntoView {
    let s = &r.scope;
    let scope = match &s.application {
        Some(a) => format!("{a}, {} to {} ({} days)", s.from, s.to, s.days),
        None => format!("All applications, {} to {} ({} days)", s.from, s.to, s.days),
    };
    let prod_index = r
        .scope
        .environments
        .iter()
        .position(|e| *e == r.scope.production);
    let per_day = prod_index
        .map(|i| format!("{:.1}", r.per_day(i)))
        .unwrap_or_else(|| "n/a".into());
    // Every chart and table is one value (or row) per week.
    let per_week = |f: &dyn Fn(&Week) -> Vec<String>| -> Vec<Vec<String>> {
        r.weeks
            .iter()
            .map(|w| std::iter::once(w.starts.clone()).chain(f(w)).collect())
            .collect()
    };
    let series = |f: &dyn Fn(&Week) -> f64| -> Vec<f64> { r.weeks.iter().map(f).collect() };
    let weeks: Vec<String> = r.weeks.iter().map(|w| w.starts.clone()).collect();
    let deploy_series: Vec<(String, Vec<f64>)> = s
        .environments
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let n = |w: &Week| w.deployments.get(i).copied().unwrap_or(0) as f64;
            (e.clone(), series(&n))
        })
        .collect();
    // Each duration chart in the unit its longest week reads best in.
    let longest = |f: &dyn Fn(&Week) -> &Spread| {
        r.weeks
            .iter()
            .filter_map(|w| f(w).median_seconds)
            .max()
            .unwrap_or(0) as f64
    };
    let lead_unit = duration_unit(longest(&|w| &w.lead_time));
    let restore_unit = duration_unit(longest(&|w| &w.time_to_restore));
    let lead = series(&|w| {
        w.lead_time
            .median_seconds
            .map(|v| v as f64 / lead_unit.0)
            .unwrap_or(0.0)
    });
    let restore = series(&|w| {
        w.time_to_restore
            .median_seconds
            .map(|v| v as f64 / restore_unit.0)
            .unwrap_or(0.0)
    });
    let cfr = series(&|w| {
        if w.production_deployments == 0 {
            0.0
        } else {
            100.0 * w.failed_changes as f64 / w.production_deployments as f64
        }
    });
    let deploy_rows = per_week(&|w| w.deployments.iter().map(|n| n.to_string()).collect());
    let deploy_head: Vec<String> = std::iter::once("Week of".to_string())
        .chain(r.scope.environments.iter().cloned())
        .collect();
    let lead_rows = per_week(&|w| {
        vec![
            w.production_deployments.to_string(),
            spread_text(&w.lead_time),
        ]
    });
    let cfr_rows = per_week(&|w| {
        vec![
            w.production_deployments.to_string(),
            w.failed_changes.to_string(),
            percent(w.failed_changes, w.production_deployments),
        ]
    });
    let restore_rows = per_week(&|w| {
        vec![
            w.time_to_restore.count.to_string(),
            spread_text(&w.time_to_restore),
        ]
    });
    let from_commit = if r.lead_time.count == 0 {
        String::new()
    } else {
        format!(
            "{} of {} from the commit, the rest from the version's first deployment",
            r.lead_time_from_commit, r.lead_time.count
        )
    };
    let counting = r.counting.then(|| view! {
        <p class="notice" role="status">"Counting the latest deployments: these figures may be a few seconds behind."</p>
    });
    view! {
        <p class="muted">{scope}</p>
        {counting}
        <dl class="stat-cards">
            <div><dt>{format!("Deployments to {} a day", r.scope.production)}</dt><dd>{per_day}</dd></div>
            <div><dt>"Lead time for changes"</dt><dd>{spread_text(&r.lead_time)}</dd><dd class="muted">{from_commit}</dd></div>
            <div><dt>"Change failure rate"</dt><dd>{percent(r.failed_changes, r.production_deployments)}</dd>
                <dd class="muted">{format!("{} of {} production deployments ({} rollbacks)", r.failed_changes, r.production_deployments, r.rollbacks)}</dd></div>
            <div><dt>"Time to restore"</dt><dd>{spread_text(&r.time_to_restore)}</dd>
                <dd class="muted">{format!("{} recoveries", r.time_to_restore.count)}</dd></div>
        </dl>
        <Chart id="frequency" title="Deployments per week".to_string() unit="" labels=weeks.clone() series=deploy_series
            head=deploy_head rows=deploy_rows/>
        <Chart id="lead" title=format!("Lead time to {}, median per week ({})", r.scope.production, lead_unit.1) unit=lead_unit.2 labels=weeks.clone()
            series=vec![("lead time".to_string(), lead)]
            head=vec!["Week of".into(), "Production deployments".into(), "Median (p90)".into()] rows=lead_rows/>
        <Chart id="failures" title="Change failure rate per week (%)".to_string() unit="%" labels=weeks.clone()
            series=vec![("failure rate".to_string(), cfr)]
            head=vec!["Week of".into(), "Production deployments".into(), "Failed or rolled back".into(), "Rate".into()] rows=cfr_rows/>
        <Chart id="restore" title=format!("Time to restore, median per week ({})", restore_unit.1) unit=restore_unit.2 labels=weeks
            series=vec![("time to restore".to_string(), restore)]
            head=vec!["Week of".into(), "Recoveries".into(), "Median (p90)".into()] rows=restore_rows/>
        <p class="muted small">"Durations are read from log-scale histograms: within 2.2% of the exact value. Days are UTC; weeks start on Monday."</p>
    }
}

/// The unit durations up to `max_seconds` read best in: (seconds in it, its name, its
/// suffix on the axis). Minutes below two hours, hours below three days, else days.
fn duration_unit(max_seconds: f64) -> (f64, &'static str, &'static str) {
    if max_seconds < 2.0 * 3600.0 {
        (60.0, "minutes", " min")
    } else if max_seconds < 72.0 * 3600.0 {
        (3600.0, "hours", " h")
    } else {
        (86_400.0, "days", " d")
    }
}

/// An axis label: whole numbers from 10 up, one decimal below.
fn axis_number(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 24.0;

/// A bar chart (grouped when there are several series) and, beside it, the table of its
/// numbers. The SVG is an image with a title; the table is what a screen reader reads.
#[component]
fn Chart(
    id: &'static str,
    title: String,
    unit: &'static str,
    labels: Vec<String>,
    series: Vec<(String, Vec<f64>)>,
    head: Vec<String>,
    rows: Vec<Vec<String>>,
) -> impl IntoView {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max);
    let top = if max <= 0.0 { 1.0 } else { max };
    let groups = labels.len().max(1) as f64;
    let slot = (WIDTH - LEFT) / groups;
    let n = series.len().max(1) as f64;
    let bar = (slot * 0.8 / n).max(1.0);
    let plot_h = HEIGHT - BOTTOM;
    let mut bars = Vec::new();
    for (s, (name, values)) in series.iter().enumerate() {
        for (i, v) in values.iter().enumerate() {
            let h = (v / top * (plot_h - 8.0)).max(0.0);
            let x = LEFT + i as f64 * slot + slot * 0.1 + s as f64 * bar;
            let tip = format!(
                "{}, {}: {:.1}{unit}",
                labels.get(i).cloned().unwrap_or_default(),
                name,
                v
            );
            bars.push(view! {
                <rect class=format!("bar series-{}", s % 5) x=format!("{x:.1}") y=format!("{:.1}", plot_h - h)
                    width=format!("{:.1}", (bar - 1.0).max(0.5)) height=format!("{h:.1}")><title>{tip}</title></rect>
            });
        }
    }
    // A label under every few weeks, so they never overlap.
    let every = ((labels.len() as f64) / 6.0).ceil().max(1.0) as usize;
    let ticks: Vec<_> = labels
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, l)| {
            let x = LEFT + i as f64 * slot + slot / 2.0;
            view! { <text class="tick" x=format!("{x:.1}") y=format!("{:.1}", HEIGHT - 6.0) text-anchor="middle">{l.get(5..).unwrap_or(l).to_string()}</text> }
        })
        .collect();
    let legend = (series.len() > 1).then(|| {
        view! {
            <ul class="legend">
                {series.iter().enumerate().map(|(s, (name, _))| view! {
                    <li><span class=format!("swatch series-{}", s % 5) aria-hidden="true"></span>{name.clone()}</li>
                }).collect_view()}
            </ul>
        }
    });
    let title_id = format!("chart-{id}-title");
    let table_label = format!("{title}: the numbers");
    // No data: no scale to read (never a "0.0 h" axis).
    let max_label = if max <= 0.0 {
        "no data".to_string()
    } else {
        format!("{}{unit}", axis_number(top))
    };
    view! {
        <section class="chart" aria-labelledby=title_id.clone()>
            <h2 id=title_id.clone()>{title.clone()}</h2>
            {legend}
            <div class="chart-body">
                <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-labelledby=format!("{id}-svg-title") class="bars">
                    <title id=format!("{id}-svg-title")>{format!("{title}: the table beside it has the numbers")}</title>
                    <line class="axis" x1=LEFT y1="0" x2=LEFT y2=plot_h/>
                    <line class="axis" x1=LEFT y1=plot_h x2=WIDTH y2=plot_h/>
                    <text class="tick" x=LEFT - 4.0 y="10" text-anchor="end">{max_label}</text>
                    <text class="tick" x=LEFT - 4.0 y=plot_h text-anchor="end">"0"</text>
                    {bars}
                    {ticks}
                </svg>
                <div class="chart-table" tabindex="0" role="region" aria-label=table_label>
                    <table>
                        <caption>{title}</caption>
                        <thead><tr>{head.into_iter().map(|h| view! { <th scope="col">{h}</th> }).collect_view()}</tr></thead>
                        <tbody>
                            {rows.into_iter().map(|row| view! {
                                <tr>{row.into_iter().enumerate().map(|(i, c)| if i == 0 {
                                    view! { <th scope="row">{c}</th> }.into_any()
                                } else {
                                    view! { <td>{c}</td> }.into_any()
                                }).collect_view()}</tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </div>
        </section>
    }
}
