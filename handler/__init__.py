"""kettle's AWS Lambda handler: the only code that knows what a Lambda event is."""

import os

# pydantic looks for plugins in every installed distribution's entry points on its first
# validator (Powertools builds one at import); the function's layer ships none. An operator who
# does use one sets PYDANTIC_DISABLE_PLUGINS to "" (or a list of the plugins to skip).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
