//! An ASL definition laid out for drawing, like the Step Functions console: states as
//! boxes top to bottom, Map and Parallel states as boxes around their inner states, edges
//! for `Next`, `Choices`, `Default` and `Catch`, each state coloured by the history.
//!
//! Layout: ranks by longest path from `StartAt` (edges that close a loop ignored), each
//! rank a row centred on the widest; a loop's edge goes back up along the right side.

use skein_states::status::ExecutionStatus;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use skein_states::store::Event;

const NODE_W: f64 = 190.0;
const NODE_H: f64 = 38.0;
const GAP_X: f64 = 26.0;
const GAP_Y: f64 = 40.0;
const PAD: f64 = 16.0;
const HEADER: f64 = 28.0;
const MARKER_W: f64 = 70.0;
const MARKER_H: f64 = 26.0;
/// Names of the markers drawn before the first state and after the last ones.
const START: &str = "Start";
const END: &str = "End";

/// Where a state stands in an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateStatus {
    /// Never entered.
    NotRun,
    /// Entered, not left.
    Running,
    /// Left normally.
    Succeeded,
    /// Failed, and a `Catch` took over.
    Caught,
    /// Failed (a Fail state, or a failure that ended the execution).
    Failed,
}

/// A state as a box (absolute coordinates).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    /// The ASL `Type`.
    pub kind: String,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// A Map or Parallel drawn around its inner states.
    pub container: bool,
    pub status: StateStatus,
    /// Times the state was entered (Map iterations count each).
    pub entered: u64,
}

/// A transition.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// `next`, `choice`, `default` or `catch`.
    pub kind: &'static str,
    /// Polyline, first point on `from`, last on `to`.
    pub points: Vec<(f64, f64)>,
}

/// The laid-out definition.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// Status and entry count per state name, from an execution's history.
pub fn statuses(
    events: &[Event],
    execution_status: ExecutionStatus,
) -> HashMap<String, (StateStatus, u64)> {
    let mut out: HashMap<String, (StateStatus, u64)> = HashMap::new();
    // The state each frame is in, and whether it failed there.
    let mut current: HashMap<&str, (String, bool)> = HashMap::new();
    for e in events {
        let name = e.details.get("name").and_then(Value::as_str);
        if e.kind.ends_with("StateEntered") {
            let Some(name) = name else { continue };
            let s = out
                .entry(name.to_string())
                .or_insert((StateStatus::NotRun, 0));
            s.1 += 1;
            s.0 = if e.kind == "FailStateEntered" {
                StateStatus::Failed
            } else {
                StateStatus::Running
            };
            current.insert(&e.frame, (name.to_string(), false));
        } else if e.kind.ends_with("StateExited") {
            let Some(name) = name else { continue };
            let failed = current.get(e.frame.as_str()).is_some_and(|c| c.1);
            if let Some(s) = out.get_mut(name)
                && s.0 == StateStatus::Running
            {
                s.0 = if failed {
                    StateStatus::Caught
                } else {
                    StateStatus::Succeeded
                };
            }
            current.remove(e.frame.as_str());
        } else if (e.kind.ends_with("Failed") || e.kind.ends_with("TimedOut"))
            && let Some(c) = current.get_mut(e.frame.as_str())
        {
            c.1 = true;
        }
    }
    // A state still running when the execution ended is where it failed.
    if execution_status != ExecutionStatus::Running {
        for (name, _) in current.values() {
            if let Some(s) = out.get_mut(name)
                && s.0 == StateStatus::Running
            {
                s.0 = StateStatus::Failed;
            }
        }
    }
    out
}

/// Lays out `definition` and colours it with `status` (from [`statuses`]); `execution`
/// is the execution's status (`RUNNING`, `SUCCEEDED`, …), which colours the Start and
/// End markers drawn around the top level, as the console does.
pub fn layout(
    definition: &Value,
    status: &HashMap<String, (StateStatus, u64)>,
    execution: ExecutionStatus,
) -> Graph {
    let block = Block::of(definition, status, Some(execution));
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    block.place(0.0, 0.0, &mut nodes, &mut edges);
    // The lanes of long edges lie right of the block: the drawing includes them.
    let lanes = edges
        .iter()
        .flat_map(|e| e.points.iter().map(|p| p.0))
        .fold(0.0, f64::max);
    Graph {
        width: (block.w + 40.0).max(lanes + 10.0),
        height: block.h,
        nodes,
        edges,
    }
}

/// A `States` object laid out relative to its own origin.
struct Block {
    w: f64,
    h: f64,
    items: Vec<Item>,
    edges: Vec<(String, String, &'static str)>,
    rank: HashMap<String, usize>,
}

struct Item {
    name: String,
    kind: String,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    /// Inner blocks (one for a Map, one per branch for a Parallel) and their offsets.
    inner: Vec<(f64, f64, Block)>,
    status: (StateStatus, u64),
}

fn targets(state: &Value) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let name = |v: &Value| v.as_str().map(str::to_string);
    if let Some(n) = state.get("Next").and_then(name) {
        out.push((n, "next"));
    }
    for c in state
        .get("Choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(n) = c.get("Next").and_then(name) {
            out.push((n, "choice"));
        }
    }
    if let Some(n) = state.get("Default").and_then(name) {
        out.push((n, "default"));
    }
    for c in state
        .get("Catch")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(n) = c.get("Next").and_then(name) {
            out.push((n, "catch"));
        }
    }
    out
}

impl Block {
    fn of(
        machine: &Value,
        status: &HashMap<String, (StateStatus, u64)>,
        execution: Option<ExecutionStatus>,
    ) -> Block {
        let empty = serde_json::Map::new();
        let states = machine
            .get("States")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let start = machine.get("StartAt").and_then(Value::as_str).unwrap_or("");
        // Discovery order (DFS from StartAt, then the unreachable ones in file order).
        let mut order: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut back: HashSet<(String, String)> = HashSet::new();
        fn dfs(
            name: &str,
            states: &serde_json::Map<String, Value>,
            order: &mut Vec<String>,
            seen: &mut HashSet<String>,
            stack: &mut Vec<String>,
            back: &mut HashSet<(String, String)>,
        ) {
            if !states.contains_key(name) || !seen.insert(name.to_string()) {
                return;
            }
            order.push(name.to_string());
            stack.push(name.to_string());
            for (t, _) in targets(&states[name]) {
                if stack.contains(&t) {
                    back.insert((name.to_string(), t));
                } else {
                    dfs(&t, states, order, seen, stack, back);
                }
            }
            stack.pop();
        }
        let mut stack = Vec::new();
        dfs(start, states, &mut order, &mut seen, &mut stack, &mut back);
        for name in states.keys() {
            dfs(name, states, &mut order, &mut seen, &mut stack, &mut back);
        }
        let mut edges = Vec::new();
        for name in &order {
            for (t, kind) in targets(&states[name.as_str()]) {
                if states.contains_key(&t) {
                    edges.push((name.clone(), t, kind));
                }
            }
        }
        // The Start and End markers (skipped if a state already has such a name).
        let mut markers: Vec<(String, StateStatus)> = Vec::new();
        if let Some(exec) = execution
            && !states.contains_key(START)
            && !states.contains_key(END)
            && states.contains_key(start)
        {
            let ends: Vec<String> = order
                .iter()
                .filter(|n| {
                    let st = &states[n.as_str()];
                    st.get("End").and_then(Value::as_bool) == Some(true)
                        || matches!(
                            st.get("Type").and_then(Value::as_str),
                            Some("Succeed" | "Fail")
                        )
                })
                .cloned()
                .collect();
            edges.insert(0, (START.to_string(), start.to_string(), "next"));
            for e in ends {
                edges.push((e, END.to_string(), "next"));
            }
            let end = match exec {
                ExecutionStatus::Succeeded => StateStatus::Succeeded,
                ExecutionStatus::Running => StateStatus::NotRun,
                _ => StateStatus::Failed,
            };
            markers.push((START.to_string(), StateStatus::Succeeded));
            markers.push((END.to_string(), end));
            order.insert(0, START.to_string());
            order.push(END.to_string());
        }
        // Longest-path ranks over the forward edges (relaxed until stable: the graph
        // without back edges is acyclic, so |states| rounds suffice).
        let mut rank: HashMap<String, usize> = order.iter().map(|n| (n.clone(), 0)).collect();
        for _ in 0..order.len() {
            let mut changed = false;
            for (f, t, _) in &edges {
                if back.contains(&(f.clone(), t.clone())) {
                    continue;
                }
                let r = rank[f] + 1;
                if rank[t] < r {
                    rank.insert(t.clone(), r);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut items: Vec<Item> = order
            .iter()
            .map(|name| {
                if let Some((_, st)) = markers.iter().find(|m| &m.0 == name) {
                    return Item {
                        name: name.clone(),
                        kind: name.clone(),
                        x: 0.0,
                        y: 0.0,
                        w: MARKER_W,
                        h: MARKER_H,
                        inner: Vec::new(),
                        status: (*st, u64::from(*st != StateStatus::NotRun)),
                    };
                }
                let state = &states[name.as_str()];
                let kind = state
                    .get("Type")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                let mut inner = Vec::new();
                if let Some(p) = state.get("ItemProcessor").or_else(|| state.get("Iterator")) {
                    inner.push((0.0, 0.0, Block::of(p, status, None)));
                }
                for b in state
                    .get("Branches")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    inner.push((0.0, 0.0, Block::of(b, status, None)));
                }
                let (mut w, mut h) = (NODE_W, NODE_H);
                if !inner.is_empty() {
                    let mut x = PAD;
                    let mut tallest: f64 = 0.0;
                    for (ix, iy, b) in inner.iter_mut() {
                        *ix = x;
                        *iy = HEADER;
                        x += b.w + GAP_X;
                        tallest = tallest.max(b.h);
                    }
                    w = (x - GAP_X + PAD).max(NODE_W);
                    h = HEADER + tallest + PAD;
                }
                Item {
                    name: name.clone(),
                    kind,
                    x: 0.0,
                    y: 0.0,
                    w,
                    h,
                    inner,
                    status: status
                        .get(name)
                        .copied()
                        .unwrap_or((StateStatus::NotRun, 0)),
                }
            })
            .collect();
        let ranks = rank.values().copied().max().map(|m| m + 1).unwrap_or(0);
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); ranks];
        for (i, item) in items.iter().enumerate() {
            rows[rank[&item.name]].push(i);
        }
        let row_w = |items: &[Item], row: &[usize]| -> f64 {
            row.iter().map(|i| items[*i].w).sum::<f64>()
                + GAP_X * row.len().saturating_sub(1) as f64
        };
        let width = rows.iter().map(|r| row_w(&items, r)).fold(NODE_W, f64::max);
        let mut y = 0.0;
        for row in &rows {
            let mut x = (width - row_w(&items, row)) / 2.0;
            let tallest = row.iter().map(|i| items[*i].h).fold(0.0, f64::max);
            for i in row {
                items[*i].x = x;
                items[*i].y = y;
                x += items[*i].w + GAP_X;
            }
            y += tallest + GAP_Y;
        }
        Block {
            w: width,
            h: (y - GAP_Y).max(0.0),
            items,
            edges,
            rank,
        }
    }

    /// Emits the nodes and edges with the block's origin at (`ox`, `oy`).
    fn place(&self, ox: f64, oy: f64, nodes: &mut Vec<Node>, edges: &mut Vec<Edge>) {
        let mut at: BTreeMap<&str, (f64, f64, f64, f64)> = BTreeMap::new();
        for it in &self.items {
            let (x, y) = (ox + it.x, oy + it.y);
            at.insert(&it.name, (x, y, it.w, it.h));
            nodes.push(Node {
                name: it.name.clone(),
                kind: it.kind.clone(),
                x,
                y,
                w: it.w,
                h: it.h,
                container: !it.inner.is_empty(),
                status: it.status.0,
                entered: it.status.1,
            });
            for (ix, iy, b) in &it.inner {
                b.place(x + ix, y + iy, nodes, edges);
            }
        }
        // Each row's top and bottom (its tallest item), so a horizontal run in the gap
        // between two rows never crosses a box, whatever the heights in a row.
        let mut bands: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
        for it in &self.items {
            let b = bands
                .entry(self.rank[&it.name])
                .or_insert((f64::MAX, f64::MIN));
            b.0 = b.0.min(oy + it.y);
            b.1 = b.1.max(oy + it.y + it.h);
        }
        let mut loops = 0.0;
        for (from, to, kind) in &self.edges {
            let (Some(f), Some(t)) = (at.get(from.as_str()), at.get(to.as_str())) else {
                continue;
            };
            let (rf, rt) = (self.rank[from], self.rank[to]);
            let points = if rt == rf + 1 {
                // Adjacent rows: a straight line through the gap between them.
                vec![(f.0 + f.2 / 2.0, f.1 + f.3), (t.0 + t.2 / 2.0, t.1)]
            } else if rt > rf {
                // Down past other rows (a Catch to Rollback, a Choice to a later state):
                // into the gap below the source's row, out to a lane right of the block,
                // down, and into the target through the gap above its row; no box crossed.
                loops += 8.0;
                let side = ox + self.w + 6.0 + loops;
                let below = bands[&rf].1 + GAP_Y / 2.0 - loops / 8.0;
                let above = bands[&rt].0 - GAP_Y / 2.0 + loops / 8.0;
                let (fx, tx) = (f.0 + f.2 - 14.0, t.0 + t.2 - 14.0);
                vec![
                    (fx, f.1 + f.3),
                    (fx, below),
                    (side, below),
                    (side, above),
                    (tx, above),
                    (tx, t.1),
                ]
            } else {
                // Back up (a loop) or sideways: down into the gap below the source's row,
                // out to the right of the block, up, and into the target from above
                // through the gap above its row (horizontal runs never cross a box).
                loops += 8.0;
                let side = ox + self.w + 6.0 + loops;
                let below = f.1 + f.3 + GAP_Y / 2.0 - loops / 4.0;
                let above = t.1 - GAP_Y / 2.0 + loops / 4.0;
                let (fx, tx) = (f.0 + f.2 / 2.0 + 12.0, t.0 + t.2 / 2.0 + 12.0);
                vec![
                    (fx, f.1 + f.3),
                    (fx, below),
                    (side, below),
                    (side, above),
                    (tx, above),
                    (tx, t.1),
                ]
            };
            edges.push(Edge {
                from: from.clone(),
                to: to.clone(),
                kind,
                points,
            });
        }
    }
}
