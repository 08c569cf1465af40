-- The sends (campaigns and API sends) whose messages the recovery sweep ended, until it has settled them.
-- Written in the transaction that ends the messages, deleted once the sweep has settled the send after that
-- commit: a sweep that dies in between (a timeout, say) leaves them here for the next tick. Before, such an
-- API send was never settled (nothing else looks for one whose messages are all final) and its credits
-- stayed reserved for good. It holds only what is owed, a handful of rows, so reading it stays flat.
CREATE TABLE settlements_due (
    reference_id uuid PRIMARY KEY,        -- the campaign or the API send request
    kind         varchar(10) NOT NULL CHECK (kind IN ('campaign', 'request')),
    since        timestamptz NOT NULL DEFAULT now()
);
