# Operator texts of the reason codes (twproto.reasons) in English and French, for the bridge, the
# operator page and tools. The station never imports this module (it sends codes only):
# twproto.reasons.message / hint / verdict_text and reasons.TABLE load it on first use.

VERDICT_TEXT = {
    "en": ("Accepted", "Accepted with warning", "Rejected"),
    "fr": ("Accepté", "Accepté avec avertissement", "Refusé"),
}

# Indexed by reason code (same order as reasons.RULE_IDS): EN message, FR message, EN hint, FR
# hint. Messages fit a small display (EN <= 40 characters, FR <= 48); hints are one sentence for
# the operator page.
TEXT = (
    (  # 0 NONE
        "Accepted",
        "Accepté",
        "Put the next bag on the scale.",
        "Posez le sac suivant sur la balance.",
    ),
    (  # 1 TAG-SYNTAX
        "Tag is not a valid ID",
        "Étiquette : identifiant invalide",
        "Scan again; if it fails, set the bag aside and call the supervisor.",
        "Scannez à nouveau ; en cas d'échec, mettez le sac de côté et appelez le superviseur.",
    ),
    (  # 2 TAG-CHECK
        "Tag check character wrong",
        "Caractère de contrôle faux",
        "Scan again; a damaged label must be replaced by the supervisor.",
        "Scannez à nouveau ; une étiquette abîmée doit être remplacée par le superviseur.",
    ),
    (  # 3 TAG-SITE
        "Tag not issued to this site",
        "Étiquette non attribuée à ce site",
        "Do not process this bag; report it to the supervisor.",
        "Ne traitez pas ce sac ; signalez-le au superviseur.",
    ),
    (  # 4 WEIGHT-RANGE
        "Weight outside allowed range",
        "Poids hors de la plage autorisée",
        "Check the bag and the scale, then weigh again.",
        "Vérifiez le sac et la balance, puis pesez à nouveau.",
    ),
    (  # 5 NOT-STABLE
        "Scale not stable",
        "Balance instable",
        "Wait until the bag is still, then weigh again.",
        "Attendez que le sac soit immobile, puis pesez à nouveau.",
    ),
    (  # 6 OUT-OF-RANGE
        "Scale overloaded or below zero",
        "Balance en surcharge ou sous zéro",
        "Remove the load, check the zero, then weigh again.",
        "Retirez la charge, vérifiez le zéro, puis pesez à nouveau.",
    ),
    (  # 7 DUPLICATE-STEP
        "Tag already weighed at this step",
        "Étiquette déjà pesée à cette étape",
        "Do not weigh a bag twice; call the supervisor if unsure.",
        "Ne pesez pas un sac deux fois ; en cas de doute, appelez le superviseur.",
    ),
    (  # 8 TIME-FUTURE
        "Station time is in the future",
        "Heure du poste dans le futur",
        "The station clock is ahead: ask a technician to set it.",
        "L'horloge du poste avance : faites-la régler par un technicien.",
    ),
    (  # 9 TIME-BEFORE-PROVISIONING
        "Time is before station setup",
        "Heure antérieure à l'installation",
        "The station clock is wrong: ask a technician to set it.",
        "L'horloge du poste est fausse : faites-la régler par un technicien.",
    ),
    (  # 10 TIME-NOT-SYNCED
        "Station clock not set",
        "Horloge du poste non réglée",
        "Connect the station to the depot computer to set the time.",
        "Connectez le poste à l'ordinateur du dépôt pour régler l'heure.",
    ),
    (  # 11 SEQ-GAP
        "Records missing in sequence",
        "Enregistrements manquants",
        "Keep the station connected so every record is sent; tell the supervisor.",
        "Gardez le poste connecté pour envoyer chaque enregistrement ; prévenez le superviseur.",
    ),
    (  # 12 OPERATOR
        "Operator not authorised",
        "Opérateur non autorisé",
        "Log in with your own operator badge.",
        "Connectez-vous avec votre propre badge d'opérateur.",
    ),
    (  # 13 MASS-BALANCE
        "Bag heavier than at earlier step",
        "Sac plus lourd qu'à l'étape précédente",
        "Set the bag aside and call the supervisor.",
        "Mettez le sac de côté et appelez le superviseur.",
    ),
    (  # 14 STEP-UNKNOWN
        "Step not allowed at this site",
        "Étape non autorisée sur ce site",
        "The station role is wrong: call a technician.",
        "Le rôle du poste est faux : appelez un technicien.",
    ),
    (  # 15 RULESET-MISMATCH
        "Rule set differs from station",
        "Règles différentes du poste",
        "Update the station's rule set.",
        "Mettez à jour les règles du poste.",
    ),
    (  # 16 TAG-STEP
        "Tag not valid at this step",
        "Étiquette non valable à cette étape",
        "Check that the bag is at the right station.",
        "Vérifiez que le sac est au bon poste.",
    ),
)
