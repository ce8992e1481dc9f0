//! What describes twlab itself: `twlab schema` (the scenario format),
//! `twlab completions SHELL` and `twlab man` (the command line, from
//! [`crate::cli`]'s definitions).

use crate::cli::{self, CompletionsArgs, ManArgs};
use crate::error::{Error, Result, exit_code};
use crate::scenario;

/// `twlab schema`.
pub fn schema(client_result: bool) -> Result<i32> {
    if client_result {
        outln!(
            "{}",
            crate::load::client::tools::command::client_result_schema()
        );
    } else {
        outln!("{}", scenario::json_schema());
    }
    Ok(exit_code::OK)
}

/// `twlab completions SHELL`.
pub fn completions(args: &CompletionsArgs) -> Result<i32> {
    out!("{}", String::from_utf8_lossy(&cli::completions(args.shell)));
    Ok(exit_code::OK)
}

/// `twlab man [--dir DIR]`: the page on stdout, or every page into DIR.
pub fn man(args: &ManArgs) -> Result<i32> {
    let Some(dir) = &args.dir else {
        let page =
            cli::man_page().map_err(|e| Error::env(format!("cannot render the man page: {e}")))?;
        out!("{}", String::from_utf8_lossy(&page));
        return Ok(exit_code::OK);
    };
    if !dir.is_dir() {
        return Err(Error::invalid(format!(
            "--dir {}: not a directory",
            dir.display()
        )));
    }
    cli::write_man_pages(dir).map_err(|e| {
        Error::env(format!(
            "cannot write the man pages into {}: {e}",
            dir.display()
        ))
    })?;
    outln!("{}", dir.display());
    Ok(exit_code::OK)
}
