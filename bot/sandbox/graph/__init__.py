"""Graph API emulators (Meta): Facebook Pages, on a shared layer Instagram can reuse.

`core` holds what every Graph host shares (versioned paths, tokens and appsecret_proof, the
error envelope, usage headers, cursor paging); `facebook` the Page routes; `pages` their objects;
`shapes` their JSON.
"""
