"""models_bake: the build step that turns a model's weights into a verified bake kettle reads."""
