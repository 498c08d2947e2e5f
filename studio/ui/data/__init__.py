"""What the Config screen shows about data: dataset files to pick (`dataset_files`), the chosen
dataset as the model reads it (`dataset_preview`), and what `data prepare` would make of a
folder of documents (`corpus_preview`)."""
