//! Where the tool model lives: `models/` under the workspace root, or `$VWN_MODEL_DIR`.
//! `scripts/fetch_model.sh` puts it there.

use std::path::{Path, PathBuf};

/// SmolLM2-135M-Instruct quantised Q4_1 (shared/corpus/SOURCES.md).
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The command that fetches the model.
pub const FETCH_COMMAND: &str = "scripts/fetch_model.sh";

/// The path of SmolLM2 for the workspace at `workspace_root`, or an error naming the
/// command that fetches it.
pub fn smollm2_path(workspace_root: &Path) -> Result<PathBuf, String> {
    let dir = std::env::var_os("VWN_MODEL_DIR").map_or_else(|| workspace_root.join("models"), PathBuf::from);
    let path = dir.join(SMOLLM2_FILE);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} is missing; fetch it with `{FETCH_COMMAND}` (from the workspace root)", path.display()))
    }
}
