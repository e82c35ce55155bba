//! `skein states bench`: durable transitions per second, every transition committed.

use std::path::Path;
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::engine::{Engine, Handlers, Options};
use crate::store::Store;

/// Runs the two benchmarks with `n` items / states and prints their figures.
pub async fn run(db: &Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let store = Store::open(db)?;
    let engine = Engine::new(store.clone(), Handlers::default(), Options::default());

    let map = json!({
        "StartAt": "Fan",
        "States": {"Fan": {"Type": "Map", "ItemsPath": "$.items", "End": true,
            "ItemProcessor": {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": true}}}}}
    });
    let items: Vec<Value> = (0..n).map(|i| json!(i)).collect();
    measure(
        &engine,
        &store,
        "inline Map of Pass states",
        map,
        json!({ "items": items }),
        n,
    )
    .await?;

    let mut states = Map::new();
    for i in 0..n {
        let mut s = json!({"Type": "Pass"});
        if i + 1 < n {
            s["Next"] = json!(format!("S{}", i + 1));
        } else {
            s["End"] = json!(true);
        }
        states.insert(format!("S{i}"), s);
    }
    let chain = json!({"StartAt": "S0", "States": states});
    measure(
        &engine,
        &store,
        "chain of Pass states",
        chain,
        json!({"x": 1}),
        n,
    )
    .await?;
    Ok(())
}

async fn measure(
    engine: &Engine,
    store: &Store,
    name: &str,
    def: Value,
    input: Value,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let outcome = engine.start("bench", def, input, None, Value::Null).await?;
    let secs = started.elapsed().as_secs_f64();
    let id = outcome
        .execution_arn
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let events = store.events(&id)?;
    let transitions = events
        .iter()
        .filter(|e| e.kind.ends_with("StateExited"))
        .count();
    println!(
        "{name:<28} n={n:<7} {:>9} {transitions:>7} transitions in {secs:>6.2}s = {:>8.0} transitions/s ({} events committed)",
        outcome.status,
        transitions as f64 / secs,
        events.len()
    );
    Ok(())
}
