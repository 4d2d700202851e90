"""Hand-written fragments that reviews are composed from: the sample data and the benchmark inputs share them.

Written for this project (nothing here comes from the Kaggle dataset). Over 600 lines because it is data:
phrase tables, not logic. Sentences are grouped by aspect of a
garment and by tone, so that a review's wording follows its rating the way real reviews do: a model trained on
the composed text has a real signal to learn, and the benchmark inputs have realistic lengths.

Placeholders filled per review: ``{item}`` (the garment noun), ``{color}``, ``{size}``, ``{height}``.
Grammatical number is settled once per garment, since plural nouns like "jeans" take "they/are/run":
``{It}``/``{it}``, ``{Itis}``/``{itis}`` (it's/they're), ``{obj}``, ``{its}``, ``{This}``/``{this}``, ``{is}``,
``{isnt}``, ``{was}``, ``{wasnt}``, ``{has}``, ``{doesnt}`` and the verb endings ``{s}`` / ``{es}``.
"""

from __future__ import annotations

# Department -> class -> garment nouns (class names as in the Kaggle file). Plural nouns are listed in PLURAL_ITEMS.
GARMENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "Tops": {
        "Knits": ("top", "tee", "tank", "henley", "knit top", "swing top", "striped tee"),
        "Blouses": ("blouse", "button-down", "tunic", "peasant top", "shirt", "embroidered blouse"),
        "Sweaters": ("sweater", "cardigan", "pullover", "turtleneck", "cable-knit sweater"),
        "Fine gauge": ("fine-knit pullover", "cardigan", "shell", "sweater", "boatneck sweater"),
    },
    "Dresses": {
        "Dresses": (
            "dress",
            "maxi dress",
            "shift dress",
            "slip dress",
            "sweater dress",
            "shirt dress",
            "wrap dress",
            "midi dress",
        ),
    },
    "Bottoms": {
        "Pants": ("pants", "trousers", "wide-leg pants", "joggers", "culottes", "cropped pants"),
        "Jeans": ("jeans", "skinny jeans", "boyfriend jeans", "bootcut jeans", "high-rise jeans"),
        "Skirts": ("skirt", "midi skirt", "pencil skirt", "mini skirt", "pleated skirt"),
        "Shorts": ("shorts", "denim shorts", "linen shorts"),
    },
    "Intimate": {
        "Intimates": ("bralette", "slip", "camisole", "bodysuit"),
        "Lounge": ("lounge pants", "hoodie", "lounge top", "pullover"),
        "Swim": ("swimsuit", "bikini top", "one-piece", "cover-up"),
        "Sleep": ("pajamas", "nightgown", "sleep shirt", "robe"),
        "Legwear": ("leggings", "tights"),
    },
    "Jackets": {
        "Jackets": ("jacket", "denim jacket", "moto jacket", "blazer"),
        "Outerwear": ("coat", "puffer vest", "trench", "parka"),
    },
    "Trend": {
        "Trend": ("jumpsuit", "romper", "top", "duster"),
    },
}

PLURAL_ITEMS: frozenset[str] = frozenset(
    {
        "pants",
        "trousers",
        "wide-leg pants",
        "joggers",
        "culottes",
        "cropped pants",
        "jeans",
        "skinny jeans",
        "boyfriend jeans",
        "bootcut jeans",
        "high-rise jeans",
        "shorts",
        "denim shorts",
        "linen shorts",
        "lounge pants",
        "pajamas",
        "leggings",
        "tights",
    }
)

# Share of each class within its department, roughly as in the real file.
CLASS_WEIGHTS: dict[str, float] = {
    "Knits": 0.45,
    "Blouses": 0.30,
    "Sweaters": 0.14,
    "Fine gauge": 0.11,
    "Dresses": 1.0,
    "Pants": 0.38,
    "Jeans": 0.31,
    "Skirts": 0.23,
    "Shorts": 0.08,
    "Intimates": 0.15,
    "Lounge": 0.40,
    "Swim": 0.20,
    "Sleep": 0.15,
    "Legwear": 0.10,
    "Jackets": 0.67,
    "Outerwear": 0.33,
    "Trend": 1.0,
}

# Share of reviews per department, roughly as in the real file.
DEPARTMENT_WEIGHTS: dict[str, float] = {
    "Tops": 0.445,
    "Dresses": 0.27,
    "Bottoms": 0.16,
    "Intimate": 0.075,
    "Jackets": 0.045,
    "Trend": 0.005,
}

COLORS: tuple[str, ...] = (
    "navy",
    "black",
    "ivory",
    "rust",
    "olive",
    "blush",
    "cobalt",
    "mustard",
    "burgundy",
    "heather grey",
    "cream",
    "coral",
    "emerald",
    "teal",
    "camel",
    "lavender",
    "white",
    "sage",
    "wine",
    "dusty rose",
)

SIZES: tuple[str, ...] = (
    "XS",
    "small",
    "medium",
    "large",
    "XL",
    "petite XS",
    "petite small",
    "petite medium",
    "size 0",
    "size 2",
    "size 4",
    "size 6",
    "size 8",
    "size 10",
    "size 12",
    "size 14",
)

HEIGHTS: tuple[str, ...] = (
    "5'0\"",
    "5'1\"",
    "5'2\"",
    "5'3\"",
    "5'4\"",
    "5'5\"",
    "5'6\"",
    "5'7\"",
    "5'8\"",
    "5'9\"",
    "5'10\"",
    "5 ft 3",
    "5 foot 6",
    "just under 5'2\"",
    "almost 5'9\"",
)

# Tones of a sentence: the share of each in a review depends on its rating (see TONE_PROBABILITIES).
TONES: tuple[str, ...] = ("pos", "mix", "neg")

# Per rating 1..5: probability that a body sentence is positive, mixed or negative.
TONE_PROBABILITIES: dict[int, tuple[float, float, float]] = {
    1: (0.01, 0.09, 0.90),
    2: (0.06, 0.26, 0.68),
    3: (0.30, 0.42, 0.28),
    4: (0.72, 0.22, 0.06),
    5: (0.94, 0.055, 0.005),
}

# Body sentences: aspect -> tone -> sentences.
ASPECTS: dict[str, dict[str, tuple[str, ...]]] = {
    "fit": {
        "pos": (
            "{It} fit{s} true to size and skim{s} the body without clinging.",
            "The fit is spot on, fitted through the shoulders and relaxed everywhere else.",
            "I ordered my usual {size} and {it} fit{s} like {it} {was} made for me.",
            "{It} {is} flattering on my pear shape, which is rare.",
            "Fits beautifully, even across the bust, which is usually my problem area.",
            "The cut is so flattering; it hides my tummy without looking boxy.",
            "I was between sizes and went with the {size}, which was the right call.",
            "{It} {has} just enough stretch to move in but still hold{s} {its} shape.",
            "Fit is perfect on my petite frame — no alterations needed!",
            "The waist sits exactly where it should and nothing gapes.",
        ),
        "mix": (
            "{It} run{s} a little big, so I'd size down if you're between sizes.",
            "The fit is fine but not as tailored as the photos suggest.",
            "I'm usually a {size} and {it} {was} snug in the arms, roomy in the waist.",
            "{It} fit{s}, but the shoulders are cut oddly wide.",
            "{Itis} a bit boxy on me; a belt helps.",
            "The hips fit well but the waist gaps at the back.",
            "Sizing is a little inconsistent — the {size} felt closer to the next size up.",
            "{It} fit{s} okay standing, but {it} ride{s} up when I sit.",
        ),
        "neg": (
            "{It} run{s} at least two sizes small; I couldn't even get {obj} over my shoulders.",
            "The fit is completely off, tight in the chest and a tent everywhere else.",
            "I ordered my usual {size} and {it} {was} huge, like a sack.",
            "The proportions are strange, almost like a pattern mistake.",
            "Way too tight across the bust, and the armholes cut into me.",
            "Even after sizing down {it} {was} shapeless and unflattering.",
            "The rise is so short I was pulling at it all day.",
            "Nothing about the fit worked for me; {it} made me look twenty pounds heavier.",
            "Sized up on the advice of other reviewers and {it} still pulled across the back.",
            "The sleeves are cut so narrow that I couldn't bend my arms comfortably.",
        ),
    },
    "fabric": {
        "pos": (
            "The fabric is buttery soft and feels much more expensive than it is.",
            "The material is a lovely weight, substantial without being heavy.",
            "Such a nice drape; the fabric moves when you walk.",
            "The knit is thick and cozy but doesn't itch at all.",
            "{Itis} a soft cotton blend that breathes well in the heat.",
            "The linen has a gorgeous texture and softens with every wear.",
            "The material is silky and doesn't wrinkle in a suitcase.",
            "Great quality fabric, the kind you don't find at this price much anymore.",
            '{It} {has} that soft, "lived-in" feel from the very first wear.',
        ),
        "mix": (
            "The fabric is soft but thinner than I expected.",
            "The material is nice, though it wrinkles if you look at it.",
            "The knit is warm, but a little scratchy at the neckline.",
            "{Itis} partly see-through, so I'll need a camisole underneath.",
            "The fabric feels a bit synthetic, but it's comfortable enough.",
            "Lovely texture, but it already shows a few pulls after one wear.",
            "The lining is nice, though the outer layer feels a little cheap.",
            "{Itis} heavier than the photos suggest — not a summer piece.",
        ),
        "neg": (
            "The fabric is paper thin and completely see-through.",
            "The material feels cheap and plasticky, nothing like the description.",
            "{It} pilled after the very first wear.",
            "The fabric is stiff and scratchy; I couldn't stand it against my skin.",
            "{Itis} polyester pretending to be silk, and {it} {doesnt} breathe at all.",
            "The knit is so loose it snagged on my bracelet within an hour.",
            "Static cling everywhere, no matter what I tried.",
            "There's a strong chemical smell that didn't go away after airing it out.",
            "The material is so thin that every seam of my bra showed through.",
        ),
    },
    "color": {
        "pos": (
            "The {color} is even prettier in person.",
            "I bought the {color} and it's a rich, saturated shade that goes with everything.",
            "The color is true to the photos, which is always a relief online.",
            "The {color} is so flattering on my skin tone; I've gotten compliments every time.",
            "The print is delicate and feminine without being too sweet.",
            "Such a versatile color, I can dress {obj} up or down.",
            "The {color} is a gorgeous shade that works all year.",
        ),
        "mix": (
            "The {color} is a bit duller than on the website.",
            "The color is pretty, though more muted than the photos.",
            "The print is busier up close than it looks online.",
            "The {color} looks great, but it shows every deodorant mark.",
            "I wish {it} came in more colors; the {color} is a little plain.",
            "The shade is nice but washed me out a little.",
        ),
        "neg": (
            "The color is nothing like the picture — the {color} looks muddy in person.",
            "The {color} turned out to be a sickly shade that washed me out completely.",
            "The print looks blurry, like a bad photocopy.",
            "The dye bled onto my hands the first time I wore {obj}.",
            "What was shown as {color} arrived as a completely different color.",
            "The white is so sheer it's basically unwearable.",
        ),
    },
    "length": {
        "pos": (
            "The length is perfect; I'm {height} and {it} hit{s} right at the knee.",
            "Great length for a petite, no hemming needed.",
            "{Itis} long enough that I don't feel exposed when I bend over.",
            "The sleeves are actually long enough for my long arms.",
            "At {height}, the hem falls exactly where I wanted it.",
            "The length works with both flats and heels.",
        ),
        "mix": (
            "{Itis} a little long for me at {height}, so I'll need to hem {obj}.",
            "The length is fine, but the sleeves come down past my fingertips.",
            "{Itis} shorter than I expected; I'd only wear {obj} with tights.",
            "The hem is uneven by design, which I'm not sure I love.",
            "The torso is a touch short, so it shows skin when I raise my arms.",
            "At {height} {itis} slightly too cropped for my taste.",
        ),
        "neg": (
            "The length is ridiculous; I'm {height} and {it} dragged on the floor.",
            "Way too short — I couldn't bend over without flashing everyone.",
            "The inseam is inches longer than listed.",
            "It's cropped so short it's basically a bra top.",
            "The hem hit me at the most unflattering spot on my calf.",
            "The sleeves are weirdly short, somewhere between three-quarter and full.",
        ),
    },
    "price": {
        "pos": (
            "I got {obj} on sale and {it} felt like a steal.",
            "Worth every penny, even at full price.",
            "For the price, the quality is outstanding.",
            "I waited for the extra 20% off, but honestly I'd pay full price.",
            "Pricey, but it's the kind of piece that lasts for years.",
            "Great value for something I wear this much.",
        ),
        "mix": (
            "{Itis} nice, but overpriced for what {it} {is}.",
            "I'd only buy {obj} on sale; full price is a stretch.",
            "The quality is fine, though I expected more at this price.",
            "Good value on sale, but I wouldn't pay retail.",
            "It's cute, but a lot of money for a basic {item}.",
        ),
        "neg": (
            "Absolutely not worth the price.",
            "For this kind of money I expect real seams and real fabric.",
            "I can find the same quality at a discount store for a fraction of the cost.",
            "Way overpriced — it looks like fast fashion.",
            "At this price point I'm honestly shocked by the quality.",
        ),
    },
    "washing": {
        "pos": (
            "I've washed {obj} several times on delicate and {it} still look{s} new.",
            "{It} came out of the dryer with no shrinkage at all.",
            "Easy to care for: cold wash, hang dry, done.",
            "{It} {doesnt} wrinkle after washing, which is huge for me.",
            "The color hasn't faded at all after a dozen washes.",
        ),
        "mix": (
            "{It} shrank a little in the wash, but {it} still fit{s}.",
            "Hand wash only, which is a bit of a pain.",
            "{It} wrinkle{s} badly after washing, so plan on steaming {obj}.",
            "The color faded slightly after the first wash.",
            "{Itis} dry clean only, which I didn't notice until after I ordered.",
        ),
        "neg": (
            "{It} shrank a full size after one gentle wash, even though I followed the label.",
            "After one wash {it} {was} covered in pills.",
            "The seams twisted after the first wash, so now {it} hang{s} crooked.",
            "The color ran all over the rest of my laundry.",
            "One cold wash and {it} came out looking ten years old.",
        ),
    },
    "occasion": {
        "pos": (
            "I wore {obj} to a wedding and felt amazing all night.",
            "Perfect for the office, and {it} transition{s} easily to dinner.",
            "{Itis} become my go-to for weekend errands.",
            "I packed {obj} for a beach trip and wore {obj} almost every day.",
            "Great for travel: comfortable on the plane and still polished when I land.",
            "{Itis} perfect for summer evenings with sandals and a denim jacket.",
            "I wore {obj} to a baby shower and got so many compliments.",
        ),
        "mix": (
            "Fine for lounging at home, but not something I'd wear out.",
            "{Itis} casual enough that I'm not sure where I'd wear {obj}.",
            "Good for the office, though too warm for summer.",
            "I'll probably keep {obj} for layering in the fall.",
            "{It} work{s} for weekends, but {itis} not the dressy piece I hoped for.",
        ),
        "neg": (
            "I bought {obj} for a party and had to change before I left the house.",
            "Not office appropriate at all, despite the description.",
            "I can't think of a single occasion I'd wear this.",
            "{It} would be too sheer for work and too frumpy for going out.",
            "I wanted something for vacation, but {it} wrinkled before I'd even left the hotel.",
        ),
    },
    "style": {
        "pos": (
            "The details are lovely: tiny buttons, a subtle pleat, a little embroidery at the cuff.",
            "{It} look{s} just as good with sneakers as with heels.",
            "{Itis} classic but still {has} a little something special.",
            "{It} layer{s} beautifully under a cardigan or a blazer.",
            "My husband asked if {it} {was} new three times, so that's a win.",
            "The design is simple but so chic.",
            "{Itis} feminine without being fussy — exactly my style.",
            "The pockets are a wonderful bonus!",
        ),
        "mix": (
            "The style is cute, but {itis} not very different from things I already own.",
            "I like the design, but the ruffles are a little much.",
            "{It} look{s} better on the model than in real life, as usual.",
            "The neckline is lower than I'd like for work.",
            "The back detail is pretty, but it means I need a special bra.",
            "{Itis} trendy, but I'm not sure {it}'ll last more than a season.",
        ),
        "neg": (
            "{It} look{s} nothing like the photo; the model must be clipped into {obj}.",
            "The ruffles made me look like a lampshade.",
            "The design is frumpy and dated in person.",
            "The pattern is placed so oddly that a flower sits right on the bust.",
            "The pockets add bulk exactly where nobody wants it.",
            "{It} look{s} like a hospital gown on me — very unflattering.",
        ),
    },
    "comfort": {
        "pos": (
            "{Itis} so comfortable I forget I'm wearing {obj}.",
            "Comfortable enough to sleep in, but polished enough for work.",
            "I've worn {obj} all day without a single adjustment.",
            "No itch, no tugging, no pinching; just comfy.",
            "{Itis} the comfiest thing in my closet right now.",
        ),
        "mix": (
            "Comfortable, but the tag is scratchy so I cut it out.",
            "{Itis} comfy enough, though the waistband digs in after a few hours.",
            "Comfortable for a short outing, not for a long day.",
            "The straps keep slipping off my shoulders, which is annoying.",
        ),
        "neg": (
            "{Itis} so uncomfortable I took {obj} off after ten minutes.",
            "The seams rub and the elastic digs in everywhere.",
            "I felt like I couldn't breathe in {obj}.",
            "Itchy, hot and restrictive — a miserable combination.",
            "The straps dug into my shoulders within an hour.",
        ),
    },
    "quality": {
        "pos": (
            "The stitching is neat and everything is lined properly.",
            "{Itis} well made, with finished seams and a sturdy zipper.",
            "You can tell the quality from the weight of {obj}.",
            "The buttons are sewn on securely, which is rare these days.",
            "{It} feel{s} like {it} will hold up for many seasons.",
        ),
        "mix": (
            "Decent quality, but there were a few loose threads to trim.",
            "The construction is okay, though the zipper feels a bit flimsy.",
            "The quality is fine for the price, nothing special.",
            "One of the buttons was loose when it arrived, an easy fix.",
        ),
        "neg": (
            "A seam came apart the first time I wore {obj}.",
            "The zipper broke the second time I used it.",
            "Loose threads everywhere and a hole near the hem on arrival.",
            "The quality has really gone downhill for this brand.",
            "The hem was crooked and the lining hung below it.",
            "{It} arrived with a stain on the front, which says a lot about quality control.",
        ),
    },
    "purchase": {
        "pos": (
            "I liked {obj} so much that I ordered a second color.",
            "{It} arrived quickly and beautifully packaged.",
            "I saw {obj} in the store first and couldn't stop thinking about {obj}.",
            "This is my third {item} from this line and I love them all.",
            "My sister borrowed {obj} and now she wants one too.",
        ),
        "mix": (
            "I'm keeping {obj}, but {itis} not love.",
            "I almost returned {obj} but decided to give {obj} another chance.",
            "I'd recommend trying {obj} on in the store before buying.",
            "{It} took forever to ship, but {it} arrived in good condition.",
        ),
        "neg": (
            "{Itis} going back, and the return shipping wasn't even free.",
            "I returned {obj} the same day.",
            "Customer service was no help when I asked about an exchange.",
            "I've ordered {obj} twice hoping the first was a fluke — same problems.",
            "{Itis} already in the return bag.",
        ),
    },
}

# Openings: by review sentiment (negative: rating 1-2, neutral: 3, positive: 4-5).
OPENINGS: dict[str, tuple[str, ...]] = {
    "positive": (
        "I love {this} {item}!",
        "What a find.",
        "I was hesitant to order online, but I'm so glad I did.",
        "Absolutely love {obj}.",
        "This might be my favorite purchase of the year.",
        "I tried {obj} on in the store on a whim and bought {obj} on the spot.",
        "I've been looking for the perfect {item} for ages and this is it.",
        "Don't let the photo fool you — {it} {is} even better in person.",
        "I bought {this} {item} for a trip and ended up wearing {obj} nonstop.",
        "So pretty.",
        "I rarely write reviews, but {this} {item} deserves one.",
        "Ordered the {color} after seeing {obj} on a friend.",
        "Another winner from this brand.",
        "Beautiful {item}.",
        "I didn't expect much, but I was pleasantly surprised.",
        "Okay, I'm obsessed.",
    ),
    "neutral": (
        "I wanted to love {this} {item}.",
        "Mixed feelings on this one.",
        "This is a tough one to review.",
        "{Itis} fine, but not great.",
        "There's a lot to like here, but a few things bother me.",
        "I'm on the fence about {this} {item}.",
        "The photos are a bit misleading.",
        "Pretty, with some caveats.",
        "I had high hopes for {this} {item}.",
        "{This} {item} {is} nice, just not quite what I expected.",
        "Cute idea, so-so execution.",
    ),
    "negative": (
        "So disappointed.",
        "I really wanted to like {this} {item}.",
        "Save your money.",
        "This was a huge letdown.",
        "Do not buy {this} {item}.",
        "I can't believe how different {it} look{s} in person.",
        "I've been a loyal customer for years, but this was a miss.",
        "Big disappointment.",
        "Sadly, this did not work for me at all.",
        "I was so excited when {it} arrived, and then I tried {obj} on.",
        "What a waste of money.",
        "Ugh.",
    ),
}

# First-person sizing context, a staple of clothing reviews: usable with any tone.
CONTEXT_SENTENCES: tuple[str, ...] = (
    "I'm {height} and ordered the {size}.",
    "For reference, I'm {height}, curvy, and usually wear a {size}.",
    "I'm {height} with a long torso and got my usual {size}.",
    "I'm {height} and about 130 lbs; the {size} is what I ordered.",
    "Reference: {height}, 34C, {size} in most brands.",
    "I'm petite ({height}) and bought the {size}.",
    "I'm {height}, athletic build, and took the {size}.",
    "I'm {height} and nursing, so I went with a {size}.",
)

# Closings: by Recommended IND (1 or 0), then by sentiment.
CLOSINGS: dict[int, dict[str, tuple[str, ...]]] = {
    1: {
        "positive": (
            "Highly recommend!",
            "I'd buy {obj} again in a heartbeat.",
            "Get {obj} before {it} sell{s} out!",
            "Can't recommend {obj} enough.",
            "I'm thinking of getting another color.",
            "A new wardrobe staple for me.",
            "Definitely a keeper.",
            "Run, don't walk.",
            "Ten out of ten, would buy again.",
            "You won't regret it.",
        ),
        "neutral": (
            "Overall I'd still recommend {obj}, especially on sale.",
            "I'm keeping {obj}, but size down.",
            "Worth a try if you're tall.",
            "Good, not great, but I'd still recommend {obj}.",
            "I'll keep {obj} for now.",
        ),
        "negative": (
            "{It} might work for someone with a different build.",
            "Maybe try {obj} in the store first.",
        ),
    },
    0: {
        "positive": (
            "I love {obj}, but I can't really recommend {obj} at this price.",
            "Cute, but I'd wait for a sale.",
        ),
        "neutral": (
            "{Itis} going back, unfortunately.",
            "I'm returning {obj}, but {it} might work for someone else.",
            "Not for me, sadly.",
            "I'll pass on this one.",
            "Back {it} go{es}.",
            "I wouldn't buy {obj} again.",
        ),
        "negative": (
            "Returned.",
            "Back {it} go{es}!",
            "Save your money and skip {this} {item}.",
            "I'm returning {obj} immediately.",
            "Never again.",
            "Very disappointed, and returning.",
            "I would not recommend {this} {item} to anyone.",
            "Pass.",
            "Such a shame, because the idea was lovely.",
            "Hoping the refund goes through quickly.",
        ),
    },
}

# Titles: about 15% of reviews have none. The Kaggle titles are short and often echo the sentiment.
TITLES: dict[str, tuple[str, ...]] = {
    "positive": (
        "Love it!",
        "Perfect {item}",
        "Gorgeous",
        "So flattering",
        "My new favorite",
        "Beautiful {item}",
        "Wardrobe staple",
        "Comfy and cute",
        "Great buy",
        "Run, don't walk",
        "Stunning",
        "Worth every penny",
        "Compliment magnet",
        "Better in person",
        "Perfect summer {item}",
        "Super soft",
        "Chic and easy",
        "Love the {color}",
        "Obsessed",
        "Great quality",
        "Buy it!",
        "So pretty",
        "Versatile {item}",
    ),
    "neutral": (
        "Just okay",
        "Almost perfect",
        "Cute but...",
        "Size down",
        "Mixed feelings",
        "Runs large",
        "Runs small",
        "Not as pictured",
        "Nice but pricey",
        "Good, not great",
        "Wanted to love it",
        "Pretty, but sheer",
        "Meh",
    ),
    "negative": (
        "Disappointed",
        "Returned",
        "Poor quality",
        "Huge",
        "Cheap fabric",
        "Not as pictured",
        "Do not buy",
        "Terrible fit",
        "Way too small",
        "See-through",
        "Save your money",
        "Shrunk after one wash",
        "What a shame",
        "Nope",
        "Unflattering",
    ),
}

# Occasional flourishes: a few reviewers write a word or two in another language, or add an emoji.
FOREIGN_PHRASES: dict[str, tuple[str, ...]] = {
    "positive": (
        "Très chic !",
        "C’est parfait pour l’été.",
        "¡Me encanta!",
        "Muy bonito, de verdad.",
        "Einfach wunderschön.",
        "Perfekt für das Büro.",
        "Je l’adore.",
        "¡Qué bonita tela!",
    ),
    "neutral": (
        "Bof, ça va.",
        "Más o menos.",
        "Na ja, es geht.",
        "C’est correct, sans plus.",
    ),
    "negative": (
        "Quelle déception.",
        "¡Qué decepción!",
        "Leider zu dünn.",
        "Schade.",
        "Pas terrible du tout.",
    ),
}

EMOJI: dict[str, tuple[str, ...]] = {
    "positive": ("😍", "❤️", "👍", "✨", "💕", "🙌"),
    "neutral": ("🤷‍♀️", "😐", "🤔"),
    "negative": ("😞", "👎", "🙁", "😩"),
}
