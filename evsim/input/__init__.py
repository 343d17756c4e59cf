"""Input: the event dtype and its checks (:mod:`.events`), file formats (:mod:`.recordings`),
labelled datasets (:mod:`.datasets`) and tonic transforms (:mod:`.transforms`)."""
