"""Graph: flows become evidence, evidence becomes the communication graph.

`identity` says who each side of a flow is, `evidence` whether a flow is
evidence and of what, `folding` keeps exploding HTTP paths bounded; the
`builder` aggregates flows into the `frame` (pandas, kept inside this
package), read back as typed `edge` values with the pods Hubble gave the
world identity resolved (`pods`); the `store` persists graphs
across runs; `session` is one observe run; `diagram` draws the graph.
"""
