"""Training and evaluating on recorded captures: the app's capture and ground-truth readers turn dataset roots into
the library trainer's sequences (:mod:`.data`); :mod:`.run` builds the training config of ``vggt-mv train`` and
starts the run. The library (``vggt_t_mv.train``) never reads an app layout: it gets sequence objects."""
