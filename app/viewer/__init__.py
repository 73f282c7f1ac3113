"""The viser 4D viewer, without click: the server and its threads (:mod:`.server`), scene nodes (:mod:`.scene`),
the GUI panel talking to the server through a protocol (:mod:`.gui`), numpy filters and poses (:mod:`.data`), the
background pipeline run (:mod:`.live`) and what ``view PATH`` opens (:mod:`.launch`)."""
