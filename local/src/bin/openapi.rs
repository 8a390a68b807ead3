//! `make openapi`: writes the API's OpenAPI document (every function's `openapi()` merged) to
//! functions/docs/openapi.json, which the docs function embeds. `--check` writes nothing and
//! fails when the file is not what the code generates.

use baatcheet_local::{openapi, template::Template};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let check = std::env::args().skip(1).any(|a| a == "--check");
    let template = Template::load_default()?;
    let doc = openapi::document(&template)?;
    let text = openapi::render(&doc);
    let path = openapi::embedded_path();
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let routes = baatcheet_shared::openapi::routes(&doc).len();
    if current == text {
        println!("functions/docs/openapi.json is current ({routes} operations)");
    } else if check {
        return Err("functions/docs/openapi.json is stale: run `make openapi`".into());
    } else {
        std::fs::write(&path, &text)?;
        println!("wrote functions/docs/openapi.json ({routes} operations)");
    }
    Ok(())
}
