//! What the data-plane targets share: the input bytes become a dataset's source file,
//! registered as table `source` and read to the end, as a migration would.

use std::sync::OnceLock;

use skein_core::load;
use skein_data::session::{Settings, list_source, register_source};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Writes `data` as `source.<ext>` of a spec with `source` (YAML flow mapping), registers
/// it and reads every row. Errors are fine; a panic is a crash.
pub fn register_and_read(data: &[u8], ext: &str, source: &str) {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join(format!("source.{ext}")), data).expect("write the source");
    let yaml = format!(
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: fuzz, owner: fuzz}}\nspec:\n  source: {source}\n  target: {{uri: out, format: parquet}}\n"
    );
    let mut file = load::parse(&dir.path().join("fuzz.yaml"), &yaml).expect("the spec parses");
    load::absolutize(&mut file);
    let settings = Settings {
        memory_limit: 64 * 1024 * 1024,
        spill_dir: Some(dir.path().join("spill")),
        target_partitions: 1,
        batch_size: 1024,
        ..Settings::default()
    };
    runtime().block_on(async {
        let Ok(source) = list_source(&settings, &file).await else {
            return;
        };
        let Ok(ctx) = settings.session() else {
            return;
        };
        if register_source(&ctx, &file, &source).await.is_err() {
            return;
        }
        if let Ok(df) = ctx.sql("SELECT * FROM source").await {
            let _ = df.collect().await;
        }
    });
}
