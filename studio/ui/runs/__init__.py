"""The run the studio shows: starting, attaching to, resuming and controlling it
(`controller`), the trainer worker's body (`launch`), the engine's events turned into Textual
messages (`trainer_bridge`, `messages`) and recorded for the screens (`monitor`), runs other
processes train (`attach`), and the keys of the actions on a run (`actions`)."""
