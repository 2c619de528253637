"""kettle's AWS Lambda handler: the only code that knows what a Lambda event is."""

from handler import lazy_packages

# Before any Powertools event_handler import: the cold path skips the resolvers it never uses.
lazy_packages.register()
