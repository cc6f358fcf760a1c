"""Graph API emulators (Meta): Facebook Pages and Instagram, on one shared layer.

`core` holds what every Graph host shares (versioned paths, tokens and appsecret_proof, the
error envelope, usage headers, cursor paging); `facebook` the Page routes; `pages` their objects;
`shapes` their JSON; `instagram` the Instagram routes (handing the rest to `facebook`, as one
host); `igmedia` its accounts, containers, media and comments.
"""
