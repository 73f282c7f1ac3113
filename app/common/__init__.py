"""What several app packages share and that belongs to none of them: the mode vocabularies (:mod:`.vocab`)."""
