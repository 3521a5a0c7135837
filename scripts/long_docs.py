"""Long documents whose label sits somewhere in the middle: a BANKING77 query inside a long support email.

A support email says what it is about in one or two sentences, somewhere among greetings, account
context, pleasantries, a signature and a confidentiality footer. `email` builds such a document around a
real query: neutral sentences (written for this project, about no intent of BANKING77) before and after
it, the query at a uniformly random place, so that cutting the document to its head finds the query
only when it happens to sit there. The label is the query's intent; the rest carries none.

    from long_docs import email; email("My card has not arrived yet", random.Random(0))
"""
from __future__ import annotations

import random

OPENINGS = ["Hello,", "Hi there,", "Dear support team,", "Good morning,", "Good afternoon,", "Dear Sir or Madam,"]
FILLER = [
    "I hope this message finds you well.", "I am writing to you about something that came up this week.",
    "I have been a customer for several years and have always found the service reliable.",
    "I tried to find the answer in the help section of the website first, without luck.",
    "I would be grateful if someone could look into this when they have a moment.",
    "Please forgive the long message, I want to give you the full picture.",
    "My partner suggested that I get in touch with you directly.", "I am travelling for work at the moment, so replies may be slow.",
    "I read through the frequently asked questions but none of them quite matched my situation.",
    "The app itself has been working nicely otherwise, and I like the new design.",
    "I would prefer a reply by email, as I cannot always take calls during the day.",
    "I have attached nothing to this message, as I was not sure what you would need.",
    "A friend of mine had a similar question last year and was helped quickly.",
    "This is the first time I have had to contact the team, so I hope I am doing it right.",
    "I checked my settings twice before writing, just in case I had missed something obvious.",
    "Things have been busy lately with moving house and starting a new job.",
    "I am happy to provide any further details if that would help.", "Thank you in advance for your patience.",
    "I realise you must receive a great many messages every day.", "I normally manage everything myself without any trouble.",
    "Earlier today I spent some time on the chat, but the conversation was cut off.",
    "I noticed this on Tuesday evening while sorting out some paperwork.", "My details should already be on file with you.",
    "I am writing from my work address as my personal one is not working today.",
    "Your colleague on the phone last month was very helpful, so thank you for that.",
    "I want to make sure everything is in order before the end of the month.",
    "It is not an emergency, but I would like to understand what is going on.",
    "I have kept a note of the times in case you need them.", "Please let me know if I should be contacting another department.",
    "I would appreciate a short confirmation once you have read this.",
]
TEMPLATES = [  # sentences with slots: every email tells its own small story around the request
    "On {day} I was {doing}, which is why I only noticed this later.", "My {person} and I are {plan} {when}.",
    "I am currently {place} and {mood} about it.", "{When_cap} I will be {doing}, so please bear with me if I am slow to reply.",
    "The weather in {town} has been {weather}, and everything feels a little slower than usual.",
    "I work as {job}, so my days are quite {mood2}.", "Before this I was {doing} with my {person} in {town}.",
    "I usually deal with these things on {day} evenings once the {chore} is done.",
]
SLOTS = {
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "doing": ["visiting my grandmother", "repainting the kitchen", "training for a half marathon", "helping a neighbour move",
              "looking after my nephew", "at a wedding in the countryside", "studying for an exam", "fixing the garden fence",
              "on a long train journey", "volunteering at the library", "recovering from a cold", "cooking for a family party"],
    "person": ["sister", "brother", "wife", "husband", "flatmate", "cousin", "mother", "father", "best friend", "colleague"],
    "plan": ["planning a trip to Lisbon", "renovating the spare room", "organising a birthday dinner", "learning to sail",
             "looking for a bigger flat", "adopting a puppy", "starting an allotment", "running a charity bake sale"],
    "when": ["next month", "over the summer", "this autumn", "after Easter", "in a few weeks", "before the holidays"],
    "When_cap": ["Next week", "Over the weekend", "For the next few days", "Until the end of the month", "From Thursday"],
    "place": ["working from a cafe", "staying with relatives", "in a hotel near the coast", "between two flats", "on a course abroad",
              "at my parents' farm", "in a shared office"],
    "mood": ["rather tired", "quite excited", "a bit stressed", "perfectly relaxed", "slightly overwhelmed", "very busy"],
    "town": ["Manchester", "Bristol", "Glasgow", "Cardiff", "Dublin", "Madrid", "Berlin", "Edinburgh", "Norwich", "York"],
    "weather": ["wet and windy", "unusually warm", "grey for weeks", "freezing in the mornings", "bright but cold"],
    "job": ["a nurse", "a teacher", "an architect", "a delivery driver", "a software tester", "a chef", "a photographer",
            "a carpenter", "a student", "an accountant"],
    "mood2": ["unpredictable", "long", "hectic", "quiet", "irregular"],
    "chore": ["washing", "shopping", "school run", "gardening", "cleaning"],
}
CLOSINGS = ["Many thanks,", "Kind regards,", "Best wishes,", "Thanks again,", "Regards,", "All the best,"]
NAMES = ["Alex", "Sam", "Jordan", "Morgan", "Chris", "Taylor", "Jamie", "Robin", "Charlie", "Casey"]
FOOTER = ("This email and any files transmitted with it are confidential and intended solely for the use of the individual to "
          "whom they are addressed. If you have received this email in error please notify the sender and delete it. "
          "Any views or opinions expressed are solely those of the author.")

def story(rng: random.Random) -> str:
    "One sentence of a sender's circumstances: a template with its slots filled at random."
    return rng.choice(TEMPLATES).format(**{k: rng.choice(v) for k, v in SLOTS.items()})

def email(query: str, rng: random.Random, sentences: tuple[int, int] = (7, 10), stories: tuple[int, int] = (6, 9),
          footer: bool = True) -> str:
    "A support email of neutral sentences (`sentences` common ones, `stories` of circumstance; low, high) with `query` at a uniformly random place among them."
    body = rng.sample(FILLER, rng.randint(*sentences)) + [story(rng) for _ in range(rng.randint(*stories))]
    rng.shuffle(body)
    body.insert(rng.randint(0, len(body)), query.strip())
    paragraphs, i = [], 0
    while i < len(body):  # paragraphs of 2 to 4 sentences
        step = rng.randint(2, 4)
        paragraphs.append(" ".join(body[i:i + step])); i += step
    out = [rng.choice(OPENINGS), *paragraphs, f"{rng.choice(CLOSINGS)}\n{rng.choice(NAMES)}"]
    return "\n\n".join(out + ([FOOTER] if footer else []))
