//! A Backstage catalog file (`skein catalog import`): entities, the specs they describe,
//! and the way back (export).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use skein_backstage as backstage;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/fuzz/catalog-info.yaml");
    let Ok(entities) = backstage::parse_entities(text, file) else {
        return;
    };
    for entity in &entities {
        if let Ok(spec) = backstage::from_entity(entity, file) {
            let back = backstage::to_entity(&spec, None);
            let rendered = backstage::render_entities(&[back]);
            let _ = backstage::parse_entities(&rendered, file);
            let _ = backstage::render_spec(&spec);
        }
    }
});
