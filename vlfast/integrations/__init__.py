"""vlfast in data pipelines: Hugging Face ``datasets`` (:mod:`.hf_datasets`), Ray Data (:mod:`.ray_data`), and the
hand-off to serving engines (:mod:`.serving`). Each module imports its framework only when used."""
