"""The GitHub Actions runner protocol, kept apart from the product so each rule has one home.

Workflow commands (`command`), capped annotations (`annotations`), `GITHUB_OUTPUT`/`GITHUB_ENV`
heredocs (`file_command`), the step summary (`summary`), `INPUT_*` parsing (`inputs`), the event
payload (`event`) and the few REST calls a pull request needs (`rest`). Everything but `rest` is
standard library only, and every writer is tested byte for byte against a parser written from the
runner's own rules.
"""
